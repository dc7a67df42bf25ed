/**
 * The sandbox process of one model: started by `process.ts` in its own empty working directory
 * with a minimal environment, it runs `OnnxRuntime` (the same class the node would run in-process)
 * for one model and answers frames on fd 3 (`protocol.ts`) until the pipe closes.
 *
 * The safety check (`onnx-check.ts`) runs here, inside `OnnxRuntime.load`, before ONNX Runtime
 * sees the bytes: the node never parses untrusted protobuf on its own thread, and a file that
 * makes the parser misbehave takes down this process only.
 *
 * Usage: node child.ts '<ChildConfig as JSON>'
 */
import { realpathSync, rmSync } from 'node:fs'
import { Socket } from 'node:net'
import { basename } from 'node:path'
import { OnnxRuntime, ModelLoadError, ModelRunError, type RunResult } from '../runtime.ts'
import { ModelLimitError } from '../errors.ts'
import { LM_FILES, type LmFiles } from '../lm/types.ts'
import { LEADING_TOKENS, SANDBOX_DIR_PREFIX, TOKEN_FRAME_MS } from './constants.ts'
import {
  FrameReader,
  TokenBatcher,
  encodeFrame,
  type ChildConfig,
  errorToWire,
  packTensors,
  tensorMapBytes,
  unpackTensors,
  type Frame,
  type Header,
  type WireTensor,
} from './protocol.ts'

/** Exit codes of a child that ends itself (anything else, or a signal, is a crash). */
export const CHILD_EXIT = { closed: 0, badConfig: 96, badFrame: 98 } as const

/**
 * ONNX Runtime reports a failed allocation (under the address-space rlimit, or a shape no machine
 * can hold) as a plain error; it is the memory limit at work. ONNX Runtime gives no code for it,
 * so its message is the only sign.
 */
const ALLOCATION_FAILED = /Failed to allocate memory|bad_alloc|Allocation failed/

function classify(err: unknown): unknown {
  if ((err instanceof ModelRunError || err instanceof ModelLoadError) && ALLOCATION_FAILED.test(err.message))
    return new ModelLimitError('memory', `an allocation failed under the memory limit: ${err.message.split('\n')[0]}`, {
      details: { allocation: true },
    })
  return err
}

function send(channel: Socket, header: Header, payload: readonly Uint8Array[] = []): void {
  const parts = encodeFrame(header, payload)
  if (parts.length === 1) {
    channel.write(parts[0] as Buffer)
    return
  }
  channel.cork()
  for (const p of parts) channel.write(p)
  channel.uncork()
}

/** A load frame's payload: the model file, then each named file (a language model's tokenizer and configs). */
function splitLoad(header: Header, payload: Uint8Array): { model: Uint8Array; files?: LmFiles } {
  const raw = header.files
  if (!Array.isArray(raw)) return { model: payload }
  const entries = raw as { name: string; length: number }[]
  const fileBytes = entries.reduce((n, f) => n + f.length, 0)
  let offset = payload.length - fileBytes
  if (!(offset >= 0)) throw new ModelLoadError('a load frame is shorter than its files')
  const model = payload.subarray(0, offset)
  const files: LmFiles = {}
  for (const f of entries) {
    const name = LM_FILES.find((n) => n === f.name)
    if (name !== undefined) files[name] = payload.subarray(offset, offset + f.length)
    offset += f.length
  }
  return { model, files }
}

/** Bytes of the tensors a header lists (where the next group of tensors starts in the payload). */
const wireBytes = (raw: unknown): number =>
  (Array.isArray(raw) ? (raw as WireTensor[]) : []).reduce((n, t) => n + t.length, 0)

async function handle(runtime: OnnxRuntime, config: ChildConfig, frame: Frame, channel: Socket): Promise<void> {
  const { header, payload } = frame
  const cid = String(header.cid)
  try {
    switch (header.op) {
      case 'load': {
        const { model, files } = splitLoad(header, payload)
        await runtime.load(cid, model, files === undefined ? {} : { files })
        return send(channel, { op: 'ok', id: header.id, model: runtime.model(cid) })
      }
      case 'inspect':
        return send(channel, { op: 'ok', id: header.id, schema: await runtime.inspect(payload) })
      case 'run': {
        const inputs = unpackTensors(header.tensors, payload)
        const claimed =
          header.claimed === undefined
            ? undefined
            : unpackTensors(header.claimed, payload.subarray(wireBytes(header.tensors)))
        const tolerance = header.tolerance as { maxAbsPpm: number } | undefined
        // tokens go to the node as they are drawn (the pipe is written between forward passes):
        // the first LEADING_TOKENS at once, later ones gathered for up to TOKEN_FRAME_MS (a write each)
        const tokens =
          header.stream === true
            ? new TokenBatcher((ids) => send(channel, { op: 'tokens', id: header.id, ids }), {
                frameMs: TOKEN_FRAME_MS,
                leading: LEADING_TOKENS,
              })
            : undefined
        let result: RunResult
        try {
          result = await runtime.run(cid, inputs, {
            ...(claimed === undefined ? {} : { claimed }),
            ...(tolerance === undefined ? {} : { tolerance }),
            ...(tokens === undefined ? {} : { onTokens: (ids: readonly number[]) => tokens.push(ids) }),
          })
        } finally {
          tokens?.flush() // every token before the reply (or the error)
        }
        const bytes = tensorMapBytes(result.outputs)
        if (bytes > config.maxOutputBytes)
          throw new ModelLimitError(
            'output-size',
            `the run produced ${bytes} output bytes; at most ${config.maxOutputBytes} are carried`,
            {
              details: { bytes, maxBytes: config.maxOutputBytes },
            },
          )
        const packed = packTensors(result.outputs)
        const reply = {
          op: 'ok',
          id: header.id,
          computeMicros: result.computeMicros,
          ep: result.ep,
          tensors: packed.tensors,
          ...(result.lm === undefined ? {} : { lm: result.lm }),
        }
        return send(channel, reply, packed.parts)
      }
      case 'calibrate': {
        const options = { durationMs: Number(header.durationMs), minRuns: Number(header.minRuns) }
        const calibration = await runtime.calibrate(cid, unpackTensors(header.tensors, payload), options)
        return send(channel, { op: 'ok', id: header.id, calibration })
      }
      default:
        throw new ModelRunError(`unknown op ${JSON.stringify(header.op)}`)
    }
  } catch (err) {
    send(channel, { op: 'error', id: header.id, error: errorToWire(classify(err)) })
  }
}

function main(): void {
  let config: ChildConfig
  try {
    config = JSON.parse(process.argv[2] ?? '') as ChildConfig
  } catch {
    process.exit(CHILD_EXIT.badConfig)
  }
  const runtime = new OnnxRuntime({
    executionProvider: config.ep,
    intraOpThreads: config.intraOpThreads,
    maxSessions: 1,
    ...(config.modelCheck === undefined ? {} : { modelCheck: config.modelCheck }),
    ...(config.unsafeSkipModelCheck === true ? { unsafeSkipModelCheck: true } : {}),
  })
  const channel = new Socket({ fd: 3, readable: true, writable: true })
  const reader = new FrameReader(config.maxFrameBytes)
  let queue = Promise.resolve()
  channel.on('data', (chunk: Buffer) => {
    let frames: Frame[]
    try {
      frames = reader.push(chunk)
    } catch {
      process.exit(CHILD_EXIT.badFrame)
    }
    for (const frame of frames) queue = queue.then(() => handle(runtime, config, frame, channel))
  })
  // the node closed the pipe (it stopped, or died without removing the directory): clean up, go
  const leave = (): never => {
    const dir = config.dir
    if (
      dir !== undefined &&
      basename(dir).startsWith(SANDBOX_DIR_PREFIX) &&
      realpathSync(dir) === realpathSync(process.cwd())
    )
      rmSync(dir, { recursive: true, force: true })
    process.exit(CHILD_EXIT.closed)
  }
  channel.on('end', leave)
  channel.on('error', leave)
  send(channel, { op: 'ready', pid: process.pid })
}

main()
