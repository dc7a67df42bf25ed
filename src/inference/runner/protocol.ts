/**
 * The wire between the node and a model's sandbox process: length-prefixed binary frames over a
 * private pipe (the child's fd 3; stdout stays out of it, so nothing a library prints can corrupt
 * it).
 *
 *   frame   = u32 bodyLength || body                     (native byte order: both ends are one machine)
 *   body    = u32 headerLength || header (UTF-8 JSON) || payload
 *   payload = model bytes (load, inspect) then a language model's files (load), or every
 *             tensor's data back to back (run, calibrate: inputs, then an audit's claimed outputs)
 *
 * A generation's run sends `tokens` frames ({ op: 'tokens', id, ids }) as tokens are drawn, before
 * its reply: the first `LEADING_TOKENS` at once, later ones gathered for up to `TOKEN_FRAME_MS`
 * (`TokenBatcher`).
 *
 * The header is small JSON (op, id, tensor names/types/dims/lengths, an error); tensor data never
 * goes through JSON. A reader refuses a frame whose announced length is over its bound before
 * buffering it, so a child cannot make the node hold more than `maxOutputBytes` plus the header
 * allowance, and the node cannot make a child hold more than a model or an input's bound.
 *
 * Pure: no I/O; `sandbox.ts` and `process.ts` hold the pipes, `child.ts` is the other end.
 */
import { AbortError, DonghaeError, InvalidInputError } from '../../core/errors.ts'
import { ModelLimitError, UnsafeModelError, MODEL_LIMITS, type ModelLimit } from '../errors.ts'
import {
  ModelCidMismatchError,
  ModelLoadError,
  ModelNotLoadedError,
  ModelRunError,
  RuntimeClosedError,
  type ExecutionProviderChoice,
} from '../runtime-facts.ts'
import type { ModelCheckLimits } from '../onnx-check.ts'
import { ContextLengthError, LmModelError, type LmModelProblem } from '../lm/errors.ts'
import {
  TENSOR_TYPES,
  TensorLimitError,
  TensorSchemaError,
  createTensor,
  type Tensor,
  type TensorMap,
  type TensorType,
} from '../tensor.ts'

const PREFIX_BYTES = 8

/** What a sandbox process is started with (`child.ts` reads it from its argv as JSON). */
export interface ChildConfig {
  ep: ExecutionProviderChoice
  intraOpThreads: number
  /** Largest frame accepted from the node (a model file or a run's inputs, plus header). */
  maxFrameBytes: number
  maxOutputBytes: number
  modelCheck?: Partial<ModelCheckLimits>
  /** TESTS ONLY (see OnnxRuntimeOptions). */
  unsafeSkipModelCheck?: boolean
  /** The child's own directory (its working directory), removed when the node goes away. */
  dir?: string
}

/** A tensor in a header: its data is `length` bytes of the payload, after the previous tensor's. */
export interface WireTensor {
  name: string
  type: TensorType
  dims: number[]
  length: number
}

/** An error in a header: enough to rebuild the typed error on the other side. */
export interface WireError {
  name: string
  message: string
  details?: Record<string, unknown>
  limit?: ModelLimit
  path?: string
}

export interface Header {
  op: string
  /** Matches a reply to its request. */
  id?: number
  [key: string]: unknown
}

export interface Frame {
  header: Header
  payload: Uint8Array
}

/** A frame over the reader's bound, or one that does not parse. */
export class FrameError extends DonghaeError {
  static override readonly code: string = 'RUNNER_FRAME_INVALID'
  override name = 'FrameError'
  readonly tooLarge: boolean
  constructor(message: string, tooLarge: boolean) {
    super(message)
    this.tooLarge = tooLarge
  }
}

/** The frame as buffers to write in order (the payload is not copied). */
export function encodeFrame(header: Header, payload: readonly Uint8Array[] = []): Buffer[] {
  const json = Buffer.from(JSON.stringify(header), 'utf8')
  const payloadBytes = payload.reduce((n, p) => n + p.length, 0)
  const head = Buffer.allocUnsafe(PREFIX_BYTES + json.length)
  head.writeUInt32LE(4 + json.length + payloadBytes, 0)
  head.writeUInt32LE(json.length, 4)
  json.copy(head, PREFIX_BYTES)
  const parts = [head, ...payload.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength))]
  // small frames go out as one write (one syscall, one wake-up on the other side)
  return payloadBytes <= 64 * 1024 ? [Buffer.concat(parts)] : parts
}

/** Frames at least this long are copied into one buffer as they arrive (a model file: no second copy). */
const LARGE_FRAME_BYTES = 1024 * 1024

/** Splits a byte stream into frames; throws `FrameError` on a frame over `maxBodyBytes`. */
export class FrameReader {
  readonly #max: number
  #chunks: Buffer[] = []
  #size = 0
  /** A large frame being filled in place: its whole buffer (prefix included), bytes filled so far. */
  #large: { frame: Buffer; filled: number; headerBytes: number } | undefined

  constructor(maxBodyBytes: number) {
    this.#max = maxBodyBytes
  }

  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = []
    let rest: Buffer | undefined = chunk
    while (rest !== undefined && rest.length > 0) {
      if (this.#large !== undefined) {
        const large = this.#large
        const n = Math.min(rest.length, large.frame.length - large.filled)
        rest.copy(large.frame, large.filled, 0, n)
        large.filled += n
        rest = rest.subarray(n)
        if (large.filled < large.frame.length) break
        this.#large = undefined
        frames.push(parseBody(large.frame, large.headerBytes))
        continue
      }
      this.#chunks.push(rest)
      this.#size += rest.length
      rest = undefined
      while (this.#size >= PREFIX_BYTES) {
        const prefix = this.#peek(PREFIX_BYTES)
        const body = prefix.readUInt32LE(0)
        const headerBytes = prefix.readUInt32LE(4)
        if (body > this.#max) throw new FrameError(`a frame of ${body} bytes exceeds the ${this.#max}-byte bound`, true)
        if (headerBytes > body - 4) throw new FrameError('a frame header runs past its frame', false)
        if (this.#size >= 4 + body) {
          frames.push(parseBody(this.#take(4 + body), headerBytes))
          continue
        }
        if (4 + body >= LARGE_FRAME_BYTES) {
          // a large frame still arriving: one buffer of its size, filled as the bytes come
          const frame = Buffer.allocUnsafe(4 + body)
          let filled = 0
          for (const c of this.#chunks) {
            c.copy(frame, filled)
            filled += c.length
          }
          this.#chunks = []
          this.#size = 0
          this.#large = { frame, filled, headerBytes }
        }
        break
      }
    }
    return frames
  }

  #peek(n: number): Buffer {
    const first = this.#chunks[0] as Buffer
    if (first.length >= n) return first
    this.#chunks = [Buffer.concat(this.#chunks)]
    return this.#chunks[0] as Buffer
  }

  #take(n: number): Buffer {
    const whole = this.#peek(n)
    const out = whole.subarray(0, n)
    const rest = whole.subarray(n)
    this.#chunks.shift()
    if (rest.length > 0) this.#chunks.unshift(rest)
    this.#size -= n
    return out
  }
}

function parseBody(frame: Buffer, headerBytes: number): Frame {
  let header: unknown
  try {
    header = JSON.parse(frame.toString('utf8', PREFIX_BYTES, PREFIX_BYTES + headerBytes))
  } catch {
    throw new FrameError('a frame header is not JSON', false)
  }
  if (header === null || typeof header !== 'object' || typeof (header as Header).op !== 'string')
    throw new FrameError('a frame header has no op', false)
  return { header: header as Header, payload: frame.subarray(PREFIX_BYTES + headerBytes) }
}

// ---- a generation's tokens ----

/**
 * Gathers a generation's tokens into `tokens` frames (`send`): the first `leading` tokens go at
 * once, each in its own frame (the first text a client sees may need several tokens: a character
 * of byte-level BPE takes up to 4); after them, a token drawn within `frameMs` of the last frame
 * waits, and goes with the next token drawn after that, or when a timer set for the end of the
 * window fires (between forward passes), or at `flush` - which the run must call before its
 * reply, so every token precedes it.
 */
export class TokenBatcher {
  readonly #send: (ids: number[]) => void
  readonly #frameMs: number
  readonly #leading: number
  readonly #now: () => number
  #held: number[] = []
  #sent = 0
  #lastSent = -Infinity
  #timer: ReturnType<typeof setTimeout> | undefined

  constructor(send: (ids: number[]) => void, options: { frameMs: number; leading: number; now?: () => number }) {
    this.#send = send
    this.#frameMs = options.frameMs
    this.#leading = options.leading
    this.#now = options.now ?? (() => performance.now())
  }

  push(ids: readonly number[]): void {
    for (const id of ids) this.#held.push(id)
    const waited = this.#now() - this.#lastSent
    if (this.#sent < this.#leading || waited >= this.#frameMs) this.flush()
    else this.#timer ??= setTimeout(() => this.flush(), this.#frameMs - waited)
  }

  /** Sends the tokens held, if any. */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#held.length === 0) return
    const ids = this.#held
    this.#held = []
    this.#sent += ids.length
    this.#lastSent = this.#now()
    this.#send(ids)
  }
}

/**
 * `frames` with each run of consecutive `tokens` frames of one request joined into one (their ids
 * in order): tokens that reached the node together go on as one piece.
 */
export function joinTokenFrames(frames: readonly Frame[]): Frame[] {
  const out: Frame[] = []
  for (const frame of frames) {
    const last = out.at(-1)
    const a = last?.header
    const b = frame.header
    if (
      last !== undefined &&
      a?.op === 'tokens' &&
      b.op === 'tokens' &&
      a.id === b.id &&
      Array.isArray(a.ids) &&
      Array.isArray(b.ids)
    )
      out[out.length - 1] = {
        header: { ...a, ids: [...(a.ids as unknown[]), ...(b.ids as unknown[])] },
        payload: last.payload,
      }
    else out.push(frame)
  }
  return out
}

// ---- tensors ----

/** Header entries and payload parts for `map` (in `order` when given, e.g. a model's outputs). */
export function packTensors(
  map: TensorMap,
  order: readonly string[] = Object.keys(map),
): { tensors: WireTensor[]; parts: Uint8Array[]; bytes: number } {
  const tensors: WireTensor[] = []
  const parts: Uint8Array[] = []
  let bytes = 0
  for (const name of order) {
    const t = map[name]
    if (t === undefined) continue
    const data = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)
    tensors.push({ name, type: t.type, dims: [...t.dims], length: data.length })
    parts.push(data)
    bytes += data.length
  }
  return { tensors, parts, bytes }
}

/** Bytes of a tensor map's data. */
export function tensorMapBytes(map: TensorMap): number {
  let bytes = 0
  for (const t of Object.values(map)) bytes += t.data.byteLength
  return bytes
}

function typedArray(type: TensorType, bytes: Uint8Array): Tensor['data'] {
  // a fresh, aligned copy: the frame's buffer is shared and unaligned (and Buffer#slice would not copy)
  const copy = new Uint8Array(bytes)
  switch (type) {
    case 'float32':
      return new Float32Array(copy.buffer)
    case 'int32':
      return new Int32Array(copy.buffer)
    case 'int64':
      return new BigInt64Array(copy.buffer)
    case 'uint8':
    case 'bool':
      return copy
  }
}

/** The tensors a header describes, read from `payload`; throws `FrameError` when they do not fit it. */
export function unpackTensors(raw: unknown, payload: Uint8Array): TensorMap {
  if (!Array.isArray(raw)) throw new FrameError('tensors missing from a frame', false)
  const map: TensorMap = {}
  let offset = 0
  for (const t of raw as WireTensor[]) {
    if (!(TENSOR_TYPES as readonly string[]).includes(t.type) || !Number.isSafeInteger(t.length) || t.length < 0)
      throw new FrameError('a frame carries a malformed tensor', false)
    if (offset + t.length > payload.length) throw new FrameError('tensor data runs past its frame', false)
    const bytes = payload.subarray(offset, offset + t.length)
    offset += t.length
    try {
      map[t.name] = createTensor(t.type, t.dims, typedArray(t.type, bytes) as never)
    } catch (err) {
      throw new FrameError(`a frame carries a malformed tensor: ${String(err)}`, false)
    }
  }
  return map
}

// ---- errors ----

export function errorToWire(err: unknown): WireError {
  if (err instanceof UnsafeModelError)
    return { name: err.name, message: err.message, details: err.details, path: err.path }
  if (err instanceof ModelLimitError)
    return { name: err.name, message: err.message, details: err.details, limit: err.limit }
  if (err instanceof DonghaeError) return { name: err.name, message: err.message, details: err.details }
  if (err instanceof Error) return { name: 'Error', message: err.message }
  return { name: 'Error', message: String(err) }
}

type Rebuild = (message: string, options: { details?: Record<string, unknown> }) => Error

const REBUILD: Readonly<Record<string, Rebuild>> = {
  ModelCidMismatchError: (m, o) => new ModelCidMismatchError(m, o),
  ModelLoadError: (m, o) => new ModelLoadError(m, o),
  ModelRunError: (m, o) => new ModelRunError(m, o),
  ModelNotLoadedError: (m, o) => new ModelNotLoadedError(m, o),
  RuntimeClosedError: (m, o) => new RuntimeClosedError(m, o),
  TensorSchemaError: (m, o) => new TensorSchemaError(m, o),
  TensorLimitError: (m, o) => new TensorLimitError(m, o),
  InvalidInputError: (m, o) => new InvalidInputError(m, o),
  AbortError: (m, o) => new AbortError(m, o),
  ContextLengthError: (m, o) => new ContextLengthError(m, o),
  LmModelError: (m, o) => new LmModelError((o.details?.problem as LmModelProblem | undefined) ?? 'bad-graph', m, o),
}

/** The typed error a child reported; an unknown kind becomes a `ModelRunError`. */
export function errorFromWire(w: WireError): Error {
  const options = w.details === undefined ? {} : { details: w.details }
  if (w.name === 'UnsafeModelError' && typeof w.path === 'string')
    return new UnsafeModelError(w.path, w.message, options)
  if (w.name === 'ModelLimitError' && MODEL_LIMITS.includes(w.limit as ModelLimit))
    return new ModelLimitError(w.limit as ModelLimit, w.message, options)
  const rebuild = REBUILD[w.name]
  return rebuild === undefined ? new ModelRunError(w.message, options) : rebuild(w.message, options)
}
