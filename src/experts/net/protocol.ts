/**
 * The expert-call protocol, `/donghae/experts/call/1`: a node asks a peer that hosts an expert
 * block to run it on some rows (hivemind's DMoE `forward`). It speaks over request sessions (one
 * long-lived stream per peer, see src/net/sessions.ts): a token's layers make many small calls.
 *
 *   request (dag-cbor, canonical):
 *     { family: string (1-64 chars), version: uint >= 1, block: 64 lowercase hex (expert block hash),
 *       layer: uint < 65536, expert: uint < 65536, rows: 1-4096, dModel: 1-16384,
 *       input: bytes (float32 little-endian, row-major [rows, dModel]; exactly rows·dModel·4 bytes),
 *       deadlineMs: 1-60000 (how long the requester waits, from the moment the request arrives) }
 *   answer (dag-cbor): { output: bytes (float32 LE, [rows, dModel]) }
 *
 * The whole request is at most `MAX_CALL_BYTES` (16 MiB, the transport's frame limit). Decoding is
 * strict: canonical dag-cbor, exactly these keys, every field typed and in range, the input's
 * length equal to rows·dModel·4. A request that fails any of it is refused with `DecodeError`,
 * and the transport penalizes its sender. Refusals that are this node's own state carry a typed
 * code and no blame: `NotHostedError` (the block is not hosted here), `ExpertBusyError` (too many
 * calls running), `ExpertDeadlineError` (the expert did not finish within `deadlineMs`),
 * `ExpertRunError` (the computation failed), and the transport's `OverBudgetError` when the peer
 * has spent its per-peer byte budget of answers.
 */
import { decode, encode } from '../../core/codec.ts'
import { systemClock, type Clock } from '../../core/clock.ts'
import { DecodeError, describeError } from '../../core/errors.ts'
import { MAX_FRAME_BYTES } from '../../net/constants.ts'
import type { ByteBudget, PeerTransport } from '../../core/transport.ts'
import type { ExpertCall } from '../model/provider.ts'
import { BadAnswerError, ExpertBusyError, ExpertDeadlineError, ExpertRunError, NotHostedError } from './errors.ts'

export const EXPERT_CALL_PROTOCOL = '/donghae/experts/call/1'
/** Largest request (and answer) message: the transport's frame limit. @default 16 MiB */
export const MAX_CALL_BYTES = MAX_FRAME_BYTES
/** Largest input (or output) tensor: the message less room for the other fields and framing. */
export const MAX_TENSOR_BYTES = MAX_CALL_BYTES - 4_096
export const MAX_ROWS = 4_096
export const MAX_D_MODEL = 16_384
export const MAX_DEADLINE_MS = 60_000
const MAX_FAMILY_CHARS = 64
const MAX_INDEX = 65_535
const BLOCK_HASH = /^[0-9a-f]{64}$/
const REQUEST_KEYS = ['block', 'dModel', 'deadlineMs', 'expert', 'family', 'input', 'layer', 'rows', 'version']

/** One expert call on the wire. */
export interface ExpertCallRequest {
  family: string
  version: number
  block: string
  layer: number
  expert: number
  rows: number
  dModel: number
  /** float32 little-endian, [rows, dModel]. */
  input: Uint8Array
  deadlineMs: number
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/** float32 values as little-endian bytes (a copy). */
export function floatsToBytes(values: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN)
    return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength))
  const out = new Uint8Array(values.length * 4)
  const view = new DataView(out.buffer)
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i] as number, true)
  return out
}

/** Little-endian float32 bytes as values (a copy, aligned); the length must be a multiple of 4. */
export function bytesToFloats(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) throw new DecodeError(`${bytes.byteLength} bytes are not whole float32 values`)
  if (LITTLE_ENDIAN) return new Float32Array(bytes.slice().buffer)
  const out = new Float32Array(bytes.byteLength / 4)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true)
  return out
}

function isUint(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max
}

/** Checks a request's fields (shared by encode and decode); the message says which field is wrong. */
function checkRequest(value: Record<string, unknown>): string | undefined {
  const { family, version, block, layer, expert, rows, dModel, input, deadlineMs } = value
  if (typeof family !== 'string' || family.length === 0 || family.length > MAX_FAMILY_CHARS) return 'family'
  if (!isUint(version, 1, 2 ** 32 - 1)) return 'version'
  if (typeof block !== 'string' || !BLOCK_HASH.test(block)) return 'block'
  if (!isUint(layer, 0, MAX_INDEX)) return 'layer'
  if (!isUint(expert, 0, MAX_INDEX)) return 'expert'
  if (!isUint(rows, 1, MAX_ROWS)) return 'rows'
  if (!isUint(dModel, 1, MAX_D_MODEL)) return 'dModel'
  if (!isUint(deadlineMs, 1, MAX_DEADLINE_MS)) return 'deadlineMs'
  if (!(input instanceof Uint8Array)) return 'input'
  const expected = rows * dModel * 4
  if (expected > MAX_TENSOR_BYTES) return 'rows·dModel (over the size limit)'
  if (input.byteLength !== expected) return `input (${input.byteLength} bytes, rows·dModel·4 = ${expected})`
  return undefined
}

export function encodeCallRequest(request: ExpertCallRequest): Uint8Array {
  const wrong = checkRequest(request as unknown as Record<string, unknown>)
  if (wrong !== undefined) throw new DecodeError(`an expert call with an invalid ${wrong}`)
  const { family, version, block, layer, expert, rows, dModel, input, deadlineMs } = request
  return encode({ family, version, block, layer, expert, rows, dModel, input, deadlineMs })
}

/** Strict decode of a request; anything else is a `DecodeError` (the sender's fault). */
export function decodeCallRequest(bytes: Uint8Array): ExpertCallRequest {
  // The bound is checked before any decoding work.
  if (bytes.byteLength > MAX_CALL_BYTES)
    throw new DecodeError(`an expert call of ${bytes.byteLength} bytes is over the ${MAX_CALL_BYTES}-byte limit`)
  const value = decode<unknown>(bytes, { maxBytes: MAX_CALL_BYTES })
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array)
    throw new DecodeError('an expert call is not a map')
  const keys = Object.keys(value).sort()
  if (keys.length !== REQUEST_KEYS.length || keys.some((k, i) => k !== REQUEST_KEYS[i]))
    throw new DecodeError(
      `an expert call has keys [${keys.slice(0, 12).join(', ')}], expected [${REQUEST_KEYS.join(', ')}]`,
    )
  const record = value as Record<string, unknown>
  const wrong = checkRequest(record)
  if (wrong !== undefined) throw new DecodeError(`an expert call with an invalid ${wrong}`)
  return record as unknown as ExpertCallRequest
}

export function encodeCallAnswer(output: Float32Array): Uint8Array {
  return encode({ output: floatsToBytes(output) })
}

/**
 * Decodes an answer to a call of `rows`×`dModel`; a wrong shape, extra keys, a wrong size or a
 * value that is not finite is a `BadAnswerError` (the host's fault: the call counts as failed).
 */
export function decodeCallAnswer(bytes: Uint8Array, rows: number, dModel: number): Float32Array {
  let value: unknown
  try {
    value = decode<unknown>(bytes, { maxBytes: MAX_CALL_BYTES })
  } catch (err) {
    throw new BadAnswerError(`an expert answer is not dag-cbor: ${describeError(err)}`, { cause: err })
  }
  const output = (value as { output?: unknown } | null)?.output
  if (typeof value !== 'object' || value === null || Object.keys(value).length !== 1 || !(output instanceof Uint8Array))
    throw new BadAnswerError('an expert answer is not { output: bytes }')
  const expected = rows * dModel * 4
  if (output.byteLength !== expected)
    throw new BadAnswerError(
      `an expert answer of ${output.byteLength} bytes, expected ${expected} (${rows}×${dModel})`,
      {
        details: { bytes: output.byteLength, expected },
      },
    )
  const floats = bytesToFloats(output)
  for (let i = 0; i < floats.length; i++)
    if (!Number.isFinite(floats[i]))
      throw new BadAnswerError(`an expert answer holds a value that is not finite at ${i}`)
  return floats
}

/** A call as the serving side's computation sees it. */
export interface ServedCall extends ExpertCall {
  family: string
  version: number
  dModel: number
  /** The requester's DID. */
  from: string
}

export interface ServeExpertsOptions {
  transport: Pick<PeerTransport, 'handle'>
  /** Whether this node hosts `block` now (loaded or loadable). */
  hosts(block: string): boolean
  /** Runs the expert: [rows, dModel] in, [rows, dModel] out. `signal` aborts at the call's deadline. */
  run(call: ServedCall, signal: AbortSignal): Promise<Float32Array>
  /** Answer bytes a peer may have per period. @default 256 MiB per 10 s */
  budget?: ByteBudget
  /** Calls run at once; more are refused with `ExpertBusyError`. @default 16 */
  maxInFlight?: number
  clock?: Clock
}

export const DEFAULT_SERVE_BUDGET: ByteBudget = { bytes: 256 * 1024 * 1024, perMs: 10_000 }

/** What `serveExperts` counts (for the operator's view and tests). */
export interface ServeStats {
  served: number
  refused: number
  malformed: number
  inFlight: number
}

/**
 * Serves `/donghae/experts/call/1` on `transport` (sessions, with a per-peer byte budget of
 * answers). Returns live counters.
 */
export function serveExperts(options: ServeExpertsOptions): ServeStats {
  const clock = options.clock ?? systemClock
  const maxInFlight = options.maxInFlight ?? 16
  const stats: ServeStats = { served: 0, refused: 0, malformed: 0, inFlight: 0 }
  const handler = async (data: Uint8Array, from: string): Promise<Uint8Array> => {
    let request: ExpertCallRequest
    try {
      request = decodeCallRequest(data)
    } catch (err) {
      stats.malformed++
      throw err
    }
    if (!options.hosts(request.block)) {
      stats.refused++
      throw new NotHostedError(`block ${request.block.slice(0, 16)}\u2026 is not hosted here`)
    }
    if (stats.inFlight >= maxInFlight) {
      stats.refused++
      throw new ExpertBusyError(`${stats.inFlight} expert calls are running; retry elsewhere`)
    }
    stats.inFlight++
    const abort = new AbortController()
    let cancelTimer = (): void => {}
    const deadline = new Promise<never>((_, reject) => {
      cancelTimer = clock.setTimer(request.deadlineMs, () => {
        const err = new ExpertDeadlineError(`the expert did not finish within ${request.deadlineMs} ms`)
        reject(err)
        abort.abort(err)
      })
    })
    try {
      const call: ServedCall = {
        family: request.family,
        version: request.version,
        block: request.block,
        layer: request.layer,
        expert: request.expert,
        rows: request.rows,
        dModel: request.dModel,
        input: bytesToFloats(request.input),
        from,
      }
      let output: Float32Array
      try {
        output = await Promise.race([options.run(call, abort.signal), deadline])
      } catch (err) {
        if (err instanceof ExpertDeadlineError) throw err
        if (abort.signal.aborted) throw abort.signal.reason as Error
        throw new ExpertRunError(`the expert failed: ${describeError(err)}`, { cause: err })
      }
      if (!(output instanceof Float32Array) || output.length !== request.rows * request.dModel)
        throw new ExpertRunError(
          `the expert returned ${output?.length} values, expected ${request.rows * request.dModel}`,
        )
      stats.served++
      return encodeCallAnswer(output)
    } catch (err) {
      stats.refused++
      throw err
    } finally {
      cancelTimer()
      stats.inFlight--
    }
  }
  options.transport.handle(EXPERT_CALL_PROTOCOL, handler, {
    session: true,
    budget: options.budget ?? DEFAULT_SERVE_BUDGET,
  })
  return stats
}
