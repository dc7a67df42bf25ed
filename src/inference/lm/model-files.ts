/**
 * A language model's files besides its graph (`LM_FILES` in types.ts), as Hugging Face publishes
 * them: the tokenizer (`tokenizer.json` + `tokenizer_config.json`, run by @huggingface/tokenizers),
 * its chat template (Jinja, run by @huggingface/jinja), and the model and generation configs
 * (context length, attention shape, end-of-sequence ids).
 *
 * Every problem is an `LmModelError` naming the file, raised when the files are parsed (at load),
 * never halfway through a job.
 */
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import type * as Tokenizers from '@huggingface/tokenizers'
import type * as Jinja from '@huggingface/jinja'
import { describeError } from '../../core/errors.ts'
import { LmModelError } from './errors.ts'
import { LM_FILES, LM_REQUIRED_FILES, type LmFileName, type LmFiles } from './types.ts'

type Json = Record<string, unknown>

const require = createRequire(import.meta.url)

/**
 * @huggingface/tokenizers and @huggingface/jinja, loaded with the first tokenizer built: a node
 * imports this module at start but tokenizes only when it publishes a language model or a
 * gateway serves a completion (docs/performance.md, "Memory of an idle node").
 */
function huggingFace(): { Tokenizer: typeof Tokenizers.Tokenizer; Template: typeof Jinja.Template } {
  return {
    Tokenizer: (require('@huggingface/tokenizers') as typeof Tokenizers).Tokenizer,
    Template: (require('@huggingface/jinja') as typeof Jinja).Template,
  }
}

/** What generation needs from `config.json` / `generation_config.json` / `tokenizer_config.json`. */
export interface LmConfig {
  /** Most tokens (prompt + output) the model attends over. */
  contextLength: number
  /** Every end-of-sequence id: generation_config U config U the tokenizer's eos token, ascending. */
  eosIds: number[]
  vocabSize?: number
  layers?: number
  heads?: number
  /** Key/value heads (grouped-query attention); `heads` when the config does not say. */
  kvHeads?: number
  headDim?: number
  /** Sampling defaults of generation_config.json (temperature 0 when it says do_sample: false). */
  defaults: GenerationDefaults
}

export interface GenerationDefaults {
  maxNewTokens?: number
  temperature?: number
  topP?: number
  topK?: number
}

export interface ChatMessage {
  role: string
  content: string
}

/** Reads a model folder's `LM_FILES` (absent optional files are skipped). */
export async function readLmFolder(dir: string): Promise<LmFiles> {
  const files: LmFiles = {}
  for (const name of LM_FILES) {
    try {
      files[name] = new Uint8Array(await readFile(join(dir, name)))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }
  return files
}

function parseJson(files: LmFiles, name: LmFileName): Json | undefined {
  const bytes = files[name]
  if (bytes === undefined) {
    if (LM_REQUIRED_FILES.includes(name))
      throw new LmModelError('missing-file', `a language model needs ${name}; it is missing`, {
        details: { file: name },
      })
    return undefined
  }
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch (err) {
    throw new LmModelError('bad-file', `${name} is not UTF-8 JSON: ${describeError(err)}`, { details: { file: name } })
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new LmModelError('bad-file', `${name} must hold a JSON object`, { details: { file: name } })
  return value as Json
}

const positiveInt = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : undefined

const tokenIds = (v: unknown): number[] =>
  (Array.isArray(v) ? v : [v]).filter((x): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)

/** A special token as tokenizer_config.json spells it: a string, or an AddedToken object with `content`. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v
  if (v !== null && typeof v === 'object' && typeof (v as Json).content === 'string')
    return (v as Json).content as string
  return undefined
}

/** The chat template: a string, or a list of {name, template} (the one named "default", else the first). */
function chatTemplateOf(config: Json): string | undefined {
  const t = config.chat_template
  if (typeof t === 'string') return t
  if (Array.isArray(t)) {
    const named = t.filter(
      (x): x is { name: string; template: string } =>
        x !== null && typeof x === 'object' && typeof x.template === 'string',
    )
    return (named.find((x) => x.name === 'default') ?? named[0])?.template
  }
  return undefined
}

/** Special tokens the template may name (bos_token, eos_token, ...), as strings. */
const SPECIAL_KEYS = ['bos_token', 'eos_token', 'pad_token', 'unk_token', 'sep_token', 'cls_token', 'mask_token']

/**
 * The tokenizer and chat template of a model. Encoding and decoding are @huggingface/tokenizers'
 * (the Rust `tokenizers` crate's algorithms, in JavaScript); rendering is @huggingface/jinja's.
 */
export class LmTokenizer {
  readonly #tokenizer: Tokenizers.Tokenizer
  readonly #template: Jinja.Template | undefined
  /** bos_token, eos_token, ... as the template sees them. */
  readonly specialTokens: Readonly<Record<string, string>>
  /** The template's source, when the model has one. */
  readonly chatTemplate: string | undefined

  constructor(tokenizerJson: Json, tokenizerConfig: Json) {
    const { Tokenizer, Template } = huggingFace()
    try {
      this.#tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig)
    } catch (err) {
      throw new LmModelError('bad-file', `tokenizer.json cannot be loaded: ${describeError(err)}`, {
        details: { file: 'tokenizer.json' },
      })
    }
    const special: Record<string, string> = {}
    for (const key of SPECIAL_KEYS) {
      const text = tokenText(tokenizerConfig[key])
      if (text !== undefined) special[key] = text
    }
    this.specialTokens = Object.freeze(special)
    this.chatTemplate = chatTemplateOf(tokenizerConfig)
    if (this.chatTemplate !== undefined)
      try {
        this.#template = new Template(this.chatTemplate)
      } catch (err) {
        throw new LmModelError('bad-template', `the chat template does not parse: ${describeError(err)}`, {
          details: { file: 'tokenizer_config.json' },
        })
      }
  }

  /** Token ids of `text`. `addSpecialTokens`: the tokenizer's post-processor (a BOS...) applies. @default false */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.#tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? false }).ids
  }

  /** Text of `ids`. `skipSpecialTokens` @default true */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '' // the library refuses an empty list
    return this.#tokenizer.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? true })
  }

  /** The id of a token's text, if the vocabulary has it. */
  tokenId(text: string): number | undefined {
    return this.#tokenizer.token_to_id(text)
  }

  /**
   * The prompt text of a conversation through the model's chat template, with the special tokens
   * (bos_token, ...) defined. `addGenerationPrompt` (@default true) ends it with the assistant's
   * turn opening. Throws `LmModelError('bad-template')` when the model has no template or it fails.
   */
  renderChat(messages: readonly ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    if (this.#template === undefined)
      throw new LmModelError('bad-template', 'the model has no chat template (tokenizer_config.json chat_template)', {
        details: { file: 'tokenizer_config.json' },
      })
    try {
      return this.#template.render({
        ...this.specialTokens,
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: options.addGenerationPrompt ?? true,
      })
    } catch (err) {
      throw new LmModelError('bad-template', `the chat template failed: ${describeError(err)}`, {
        details: { file: 'tokenizer_config.json' },
      })
    }
  }

  /** Token ids of a conversation's prompt: `renderChat`, then `encode` without added special tokens (the template has them). */
  encodeChat(messages: readonly ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): number[] {
    return this.encode(this.renderChat(messages, options))
  }

  /** A fresh incremental detokenizer (see `Detokenizer`). */
  detokenizer(): Detokenizer {
    return new Detokenizer((ids) => this.decode(ids))
  }
}

/**
 * Turns generated ids into text as they come. A token may end inside a UTF-8 character (byte-level
 * BPE) or change how its predecessor decodes (a leading space, a merge), so each new piece is the
 * difference between decoding a short window with and without the new tokens, emitted only when
 * the text grew and does not end in U+FFFD (an incomplete character). The concatenation of
 * `push` results and a final `flush` is the decoded text of all ids (special tokens skipped).
 *
 * The stop-string rule of generation (engine.ts) reads this text, so generation and audits see
 * exactly the same text at every step.
 */
export class Detokenizer {
  readonly #decode: (ids: readonly number[]) => string
  readonly #ids: number[] = []
  #prefix = 0
  #read = 0
  /** Everything emitted so far. */
  text = ''

  constructor(decode: (ids: readonly number[]) => string) {
    this.#decode = decode
  }

  /** Adds one token; returns the new text it completes ('' when it completes none yet). */
  push(id: number): string {
    this.#ids.push(id)
    const before = this.#decode(this.#ids.slice(this.#prefix, this.#read))
    const after = this.#decode(this.#ids.slice(this.#prefix))
    if (after.length <= before.length || after.endsWith('\uFFFD') || !after.startsWith(before)) return ''
    const piece = after.slice(before.length)
    this.#prefix = this.#read
    this.#read = this.#ids.length
    this.text += piece
    return piece
  }

  /** The text still held back (an incomplete character at the end); the detokenizer is done after it. */
  flush(): string {
    const before = this.#decode(this.#ids.slice(this.#prefix, this.#read))
    const after = this.#decode(this.#ids.slice(this.#prefix))
    const piece = after.startsWith(before) ? after.slice(before.length) : ''
    this.#prefix = this.#read = this.#ids.length
    this.text += piece
    return piece
  }
}

const finiteNumber = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined)

function generationDefaults(g: Json): GenerationDefaults {
  const d: GenerationDefaults = {}
  const maxNew = positiveInt(g.max_new_tokens)
  if (maxNew !== undefined) d.maxNewTokens = maxNew
  const temperature = g.do_sample === false ? 0 : finiteNumber(g.temperature)
  if (temperature !== undefined) d.temperature = temperature
  const topP = finiteNumber(g.top_p)
  if (topP !== undefined) d.topP = topP
  const topK = typeof g.top_k === 'number' && Number.isSafeInteger(g.top_k) && g.top_k >= 0 ? g.top_k : undefined
  if (topK !== undefined) d.topK = topK
  return d
}

/** The parsed files of a language model. */
export interface LmModelFiles {
  tokenizer: LmTokenizer
  config: LmConfig
}

/**
 * Parses a model's files. Throws `LmModelError`: `missing-file` (tokenizer.json or
 * tokenizer_config.json absent), `bad-file`, `bad-template`, or `bad-config` when no context
 * length or end-of-sequence id can be found.
 */
export function parseLmFiles(files: LmFiles): LmModelFiles {
  const tokenizerJson = parseJson(files, 'tokenizer.json')!
  const tokenizerConfig = parseJson(files, 'tokenizer_config.json')!
  const config = parseJson(files, 'config.json') ?? {}
  const generation = parseJson(files, 'generation_config.json') ?? {}
  const tokenizer = new LmTokenizer(tokenizerJson, tokenizerConfig)
  const text = textConfig(config)
  const contextLength = contextLengthFrom(text, tokenizerConfig)
  const eos = new Set([...tokenIds(generation.eos_token_id), ...tokenIds(text.eos_token_id)])
  const eosText = tokenizer.specialTokens.eos_token
  const eosId = eosText === undefined ? undefined : tokenizer.tokenId(eosText)
  if (eosId !== undefined) eos.add(eosId)
  if (eos.size === 0)
    throw new LmModelError(
      'bad-config',
      'no end-of-sequence token: generation_config.json or config.json needs eos_token_id, or tokenizer_config.json eos_token',
      { details: { file: 'generation_config.json' } },
    )
  const heads = positiveInt(text.num_attention_heads) ?? positiveInt(text.n_head)
  const hidden = positiveInt(text.hidden_size) ?? positiveInt(text.n_embd)
  const lmConfig: LmConfig = {
    contextLength,
    eosIds: [...eos].sort((a, b) => a - b),
    defaults: generationDefaults(generation),
  }
  const set = (key: 'vocabSize' | 'layers' | 'heads' | 'kvHeads' | 'headDim', v: number | undefined): void => {
    if (v !== undefined) lmConfig[key] = v
  }
  set('vocabSize', positiveInt(text.vocab_size))
  set('layers', positiveInt(text.num_hidden_layers) ?? positiveInt(text.n_layer))
  set('heads', heads)
  set('kvHeads', positiveInt(text.num_key_value_heads) ?? heads)
  set(
    'headDim',
    positiveInt(text.head_dim) ?? (heads !== undefined && hidden !== undefined ? hidden / heads : undefined),
  )
  return { tokenizer, config: lmConfig }
}

/**
 * The model's context window in tokens (prompt + output), from `config.json` and
 * `tokenizer_config.json` alone: no tokenizer is built. Throws `LmModelError` (`missing-file`,
 * `bad-file`, `bad-config`) when the files do not say.
 */
export function contextLengthOf(files: LmFiles): number {
  const tokenizerConfig = parseJson(files, 'tokenizer_config.json')!
  return contextLengthFrom(textConfig(parseJson(files, 'config.json') ?? {}), tokenizerConfig)
}

/** The text model's settings: some configs nest them (multimodal exports). */
function textConfig(config: Json): Json {
  return (config.text_config !== null && typeof config.text_config === 'object' ? config.text_config : config) as Json
}

function contextLengthFrom(text: Json, tokenizerConfig: Json): number {
  const maxLength = positiveInt(tokenizerConfig.model_max_length)
  const contextLength =
    positiveInt(text.max_position_embeddings) ??
    positiveInt(text.n_positions) ??
    positiveInt(text.n_ctx) ??
    positiveInt(text.max_sequence_length) ??
    // transformers writes 1e30 for "no limit"
    (maxLength !== undefined && maxLength < 2 ** 31 ? maxLength : undefined)
  if (contextLength === undefined)
    throw new LmModelError(
      'bad-config',
      'the context length is unknown: config.json needs max_position_embeddings (or n_positions, n_ctx)',
      { details: { file: 'config.json' } },
    )
  return contextLength
}
