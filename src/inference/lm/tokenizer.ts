/**
 * What the node needs of a language model's files when it publishes one or serves completions
 * (src/node/inference.ts): a `CompletionTokenizer` (completion.ts), the context length, the check
 * that a graph is a decoder the runtime can drive, and the registry tolerance of `lm` models.
 */
import type { Tolerance, TensorSpec } from '../tensor.ts'
import type { CompletionTokenizer } from './completion.ts'
import { decoderLayout, type DecoderLayout } from './layout.ts'
import { parseLmFiles, type LmModelFiles } from './model-files.ts'
import type { LmFiles } from './types.ts'

/**
 * The registry tolerance of `lm` models: how far (absolute, in logits) an honest worker's logits
 * may be from an auditor's when `checkToken` (sampler.ts) checks its tokens. On the CPU the demo
 * model's logits differ between cached one-token passes and one teacher-forced pass by about
 * 3·10^-6; 0.01 leaves room for other execution providers and larger models, while a token's
 * interval widens by only about 2%/T (T the temperature).
 * `top1` is not used by generation audits.
 */
export const LM_TOLERANCE: Readonly<Tolerance> = Object.freeze({ maxAbsPpm: 10_000, top1: false })

/** A completion's view of the files (encode, chat template, streaming decoder, generation defaults). */
export function completionTokenizer(files: LmFiles | LmModelFiles): CompletionTokenizer {
  const parsed = 'tokenizer' in files && 'config' in files ? (files as LmModelFiles) : parseLmFiles(files as LmFiles)
  const { tokenizer } = parsed
  return {
    encode: (text) => tokenizer.encode(text),
    encodeChat: (messages) => tokenizer.encodeChat(messages),
    decoder: () => {
      const detok = tokenizer.detokenizer()
      return {
        push: (ids) => ids.map((id) => detok.push(id)).join(''),
        flush: () => detok.flush(),
      }
    },
    defaults: parsed.config.defaults,
  }
}

export { contextLengthOf } from './model-files.ts'

/**
 * Checks that a graph's declared inputs and outputs (`inspect`) are a decoder with a KV cache
 * (`layout.ts`). Throws `LmModelError('bad-graph')` saying what is missing. `files` supply the
 * cache shape when the graph leaves it symbolic.
 */
export function checkDecoderLayout(
  schema: { inputs: readonly TensorSpec[]; outputs: readonly TensorSpec[] },
  files?: LmFiles,
): DecoderLayout {
  return decoderLayout(schema, files === undefined ? {} : parseLmFiles(files).config)
}
