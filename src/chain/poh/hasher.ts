/**
 * The PoH hash loop, kept as fast as the SHA-256 we have allows without writing SHA-256 ourselves.
 *
 * `@chainsafe/as-sha256`'s `digest(bytes)` allocates a fresh output array on every call, which caps
 * a `h = sha256(h)` chain near 1 M hashes/s. Its WASM instance, however, exports `digest(length)`,
 * which hashes the first `length` bytes of the instance's own input buffer into its output buffer.
 * So the running hash lives in the WASM input buffer: each step is one call into WASM plus eight
 * 32-bit copies from output back to input, with no allocation and no copying through JS arrays.
 * A mixin is written behind the hash (input bytes 32..63) and hashed with `digest64`.
 *
 * Each `PohHasher` owns its own WASM instance (a few pages of memory), so the generator, the
 * verifier's workers and the main thread never share state.
 */
import { SHA256 } from '@chainsafe/as-sha256'
import { InvalidInputError } from '../../core/errors.ts'
import { POH_HASH_LENGTH } from './constants.ts'

type WasmContext = SHA256['ctx']

export class PohHasher {
  readonly #ctx: WasmContext
  /** The running hash: the first 32 bytes of the WASM input buffer, then room for a mixin. */
  readonly #input: Uint8Array
  readonly #state: Uint32Array
  readonly #out: Uint32Array
  readonly #inputPtr: number
  readonly #outputPtr: number

  constructor(start?: Uint8Array) {
    this.#ctx = new SHA256().ctx
    const memory = this.#ctx.memory.buffer
    this.#inputPtr = this.#ctx.input.value
    this.#outputPtr = this.#ctx.output.value
    this.#input = new Uint8Array(memory, this.#inputPtr, 2 * POH_HASH_LENGTH)
    this.#state = new Uint32Array(memory, this.#inputPtr, POH_HASH_LENGTH / 4)
    this.#out = new Uint32Array(memory, this.#outputPtr, POH_HASH_LENGTH / 4)
    if (start !== undefined) this.set(start)
  }

  /** A copy of the running hash. */
  get hash(): Uint8Array {
    return this.#input.slice(0, POH_HASH_LENGTH)
  }

  /** Makes `bytes[offset..offset+32]` the running hash. */
  set(bytes: Uint8Array, offset = 0): void {
    if (offset < 0 || bytes.length - offset < POH_HASH_LENGTH) {
      throw new InvalidInputError('a PoH hash must be 32 bytes', { details: { length: bytes.length - offset } })
    }
    this.#input.set(bytes.subarray(offset, offset + POH_HASH_LENGTH))
  }

  /** Applies `h = sha256(h)` `count` times. */
  hashN(count: number): void {
    const digest = this.#ctx.digest
    const s = this.#state
    const o = this.#out
    for (let i = 0; i < count; i++) {
      digest(POH_HASH_LENGTH)
      s[0] = o[0] as number
      s[1] = o[1] as number
      s[2] = o[2] as number
      s[3] = o[3] as number
      s[4] = o[4] as number
      s[5] = o[5] as number
      s[6] = o[6] as number
      s[7] = o[7] as number
    }
  }

  /** Applies `h = sha256(h || mixin)` with the 32-byte mixin at `bytes[offset..]`. */
  mix(bytes: Uint8Array, offset = 0): void {
    if (offset < 0 || bytes.length - offset < POH_HASH_LENGTH) {
      throw new InvalidInputError('a PoH mixin must be 32 bytes', { details: { length: bytes.length - offset } })
    }
    this.#input.set(bytes.subarray(offset, offset + POH_HASH_LENGTH), POH_HASH_LENGTH)
    this.#ctx.digest64(this.#inputPtr, this.#outputPtr)
    this.#state.set(this.#out)
  }

  /** Whether the running hash equals `bytes[offset..offset+32]`. */
  equals(bytes: Uint8Array, offset = 0): boolean {
    if (offset < 0 || bytes.length - offset < POH_HASH_LENGTH) return false
    const h = this.#input
    for (let i = 0; i < POH_HASH_LENGTH; i++) if (h[i] !== bytes[offset + i]) return false
    return true
  }

  /** Copies the running hash into `bytes[offset..offset+32]`. */
  writeTo(bytes: Uint8Array, offset = 0): void {
    bytes.set(this.#input.subarray(0, POH_HASH_LENGTH), offset)
  }
}
