/**
 * Text models at the gateway: the tokenizer of a text model (a `CharsModelSpec`, see chars.ts)
 * is the JSON file that accompanies its ONNX file (`<name>.json`, naming the model's `cid`). The
 * registry records its CID (`codec`) and nodes pass it around as a blob like the weights; a model
 * registered without one is looked up in the demo models and `<home>/models/`. Generation is greedy, one job per character, so
 * every generated character is computed by some worker and carries its receipt.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { charsInput, greedyChar, normalizeText, parseCharsSpec, type CharsModelSpec } from './chars.ts'
import type { TensorMap } from './tensor.ts'
import { InvalidInputError, describeError } from '../core/errors.ts'

export class TextCodec {
  readonly spec: CharsModelSpec

  constructor(spec: CharsModelSpec) {
    this.spec = spec
  }

  /**
   * The codec in a tokenizer file's bytes, for the model `cid`: a file that names another model
   * is refused (InvalidInputError), as is anything chars.ts cannot read.
   */
  static fromJson(bytes: Uint8Array, cid: string): TextCodec {
    let raw: unknown
    try {
      raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
    } catch (err) {
      throw new InvalidInputError(`the tokenizer is not JSON: ${describeError(err)}`)
    }
    const named = (raw as { cid?: unknown } | null)?.cid
    if (named !== undefined && named !== cid)
      throw new InvalidInputError(`the tokenizer names model ${String(named)}, not ${cid}`)
    return new TextCodec(parseCharsSpec(raw))
  }

  /** The codec of the model with this CID, from a `*.json` sidecar in `dirs`, or undefined. */
  static async forModel(cid: string, dirs: readonly string[]): Promise<TextCodec | undefined> {
    for (const dir of dirs) {
      let names: string[]
      try {
        names = await readdir(dir)
      } catch {
        continue
      }
      for (const name of names.filter((n) => n.endsWith('.json'))) {
        try {
          const raw = JSON.parse(await readFile(join(dir, name), 'utf8')) as { cid?: unknown }
          if (raw.cid === cid) return new TextCodec(parseCharsSpec(raw))
        } catch {
          // not a tokenizer file
        }
      }
    }
    return undefined
  }

  /** How many characters of `text` the model reads (after normalization). */
  tokens(text: string): number {
    return [...normalizeText(this.spec, text)].length
  }

  encode(context: string): TensorMap {
    return charsInput(this.spec, [context])
  }

  decode(outputs: TensorMap): string {
    const out = outputs[this.spec.outputName]
    if (out === undefined || out.type !== 'float32') throw new Error(`the model gave no ${this.spec.outputName}`)
    return greedyChar(this.spec, out.data)
  }
}
