/**
 * One sandbox process: a Node child running `child.ts` in a fresh, empty directory (mkdtemp,
 * removed when it ends) with a minimal environment, spoken to over fd 3 with `protocol.ts` frames.
 *
 * Requests go one at a time (a child runs ONNX Runtime synchronously anyway), so a request's time
 * limit starts when it is written. A request may get progress frames (a generation's `tokens`)
 * before its reply; they go to its `onProgress` (`tokens` frames read together as one frame).
 * `kill(error)` ends the child with SIGKILL and fails what is pending with that error; a child
 * that dies on its own fails it with `ModelLimitError('crashed')` carrying the exit code or signal
 * and the tail of its stderr.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import module from 'node:module'
import { setPriority } from 'node:os'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { Socket } from 'node:net'
import type { Clock } from '../../core/clock.ts'
import { AbortError } from '../../core/errors.ts'
import type { Logger } from '../../core/logger.ts'
import { ModelLimitError, type ModelLimit } from '../errors.ts'
import {
  CHILD_HEAP_MIB,
  CLOSE_GRACE_MS,
  MODEL_PROCESS_NICE,
  SANDBOX_DIR_PREFIX,
  SANDBOX_ENV_KEYS,
  STDERR_TAIL_BYTES,
} from './constants.ts'
import {
  FrameError,
  FrameReader,
  encodeFrame,
  errorFromWire,
  joinTokenFrames,
  type ChildConfig,
  type Frame,
  type Header,
  type WireError,
} from './protocol.ts'

/** A line of a dying process's stderr that says why (V8, the C++ runtime, the kernel's signal). */
const CAUSE = /FATAL ERROR|terminate called|Assertion|Segmentation fault|out of memory/i

const CHILD_ENTRY = fileURLToPath(new URL('./child.ts', import.meta.url))

/**
 * The environment of a child: `SANDBOX_ENV_KEYS` from the node's, temp directories in `dir`, and
 * ONNX Runtime's telemetry off (on Linux it otherwise writes `.ses` and `mat-debug-<pid>.log`
 * into the temp directory). Where the node keeps Node's compile cache (`compileCache`, by
 * default this process's; false: none), the child uses the same one (`NODE_COMPILE_CACHE`): its
 * modules' code and stripped JavaScript come from there from the second start on, so a child does
 * not load the TypeScript stripper (about 18 MB of each child's memory). This gives a child
 * nothing it could not do already: it runs as the node's user, with the node's files.
 */
export function sandboxEnv(
  parent: NodeJS.ProcessEnv,
  dir: string,
  compileCache: string | false = module.getCompileCacheDir?.() ?? false,
): Record<string, string> {
  const env: Record<string, string> = {}
  for (const key of SANDBOX_ENV_KEYS) {
    const value = parent[key]
    if (value !== undefined) env[key] = value
  }
  if (compileCache !== false) env.NODE_COMPILE_CACHE = compileCache
  return { ...env, TMPDIR: dir, TMP: dir, TEMP: dir, ORT_DISABLE_TELEMETRY: '1' }
}

/** The command that starts a child: under `ulimit -v` on Linux when `addressSpaceBytes` > 0. */
export function childCommand(
  config: ChildConfig,
  addressSpaceBytes: number,
  platform = process.platform,
): { file: string; args: string[] } {
  const node = [process.execPath, `--max-old-space-size=${CHILD_HEAP_MIB}`, CHILD_ENTRY, JSON.stringify(config)]
  if (platform !== 'linux' || addressSpaceBytes <= 0) return { file: node[0] as string, args: node.slice(1) }
  const kib = String(Math.floor(addressSpaceBytes / 1024))
  // exec keeps the pid: the node polls and kills the child itself, not a shell around it
  return {
    file: '/bin/sh',
    args: ['-c', 'ulimit -v "$1" || exit 95; shift; exec "$@"', 'donghae-sandbox', kib, ...node],
  }
}

export interface ProcessInit {
  /** Where the child's directory is made. */
  root: string
  config: ChildConfig
  addressSpaceBytes: number
  /** Largest frame accepted from the child. */
  maxFrameBytes: number
  clock: Clock
  logger: Logger
  /** @default process.env (filtered by `sandboxEnv`) */
  env?: NodeJS.ProcessEnv
}

interface Pending {
  resolve(frame: Frame): void
  reject(err: Error): void
  progress?(header: Header): void
}

/** Ops of the frames a child sends while a request runs, before its reply. */
export const PROGRESS_OPS: ReadonlySet<string> = new Set(['tokens'])

export interface RequestOptions {
  /** Kill the child when the reply takes longer, failing the request with `limit`. */
  limitMs?: number
  limit?: Extract<ModelLimit, 'load-time' | 'run-time'>
  /** Called with each progress frame (`PROGRESS_OPS`) of this request; what it throws is dropped. */
  onProgress?(header: Header): void
}

export class ModelProcess {
  readonly dir: string
  readonly #child: ChildProcess
  readonly #channel: Socket
  readonly #clock: Clock
  readonly #log: Logger
  readonly #reader: FrameReader
  readonly #pending = new Map<number, Pending>()
  readonly ready: Promise<void>
  readonly exited: Promise<void>
  #nextId = 1
  #tail: Promise<unknown> = Promise.resolve()
  #inFlight = 0
  #stderr = ''
  #killedWith: Error | undefined
  #dead = false

  private constructor(dir: string, child: ChildProcess, init: ProcessInit) {
    this.dir = dir
    this.#child = child
    this.#clock = init.clock
    this.#log = init.logger
    this.#reader = new FrameReader(init.maxFrameBytes)
    this.#channel = child.stdio[3] as Socket
    let readyResolve!: () => void
    this.ready = new Promise<void>((resolve) => (readyResolve = resolve))
    this.#pending.set(0, { resolve: () => readyResolve(), reject: () => {} })
    this.#channel.on('data', (chunk: Buffer) => this.#onData(chunk))
    this.#channel.on('error', () => {}) // the exit handler reports the death
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      this.#stderr = (this.#stderr + text).slice(-STDERR_TAIL_BYTES)
    })
    this.exited = new Promise<void>((resolve) => {
      let done = false
      const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void => {
        if (done) return
        done = true
        if (spawnError !== undefined)
          this.#killedWith ??= new ModelLimitError(
            'crashed',
            `the model's process could not start: ${spawnError.message}`,
          )
        this.#onExit(code, signal)
        void rm(dir, { recursive: true, force: true }).finally(resolve)
      }
      child.once('close', (code, signal) => finish(code, signal))
      // spawning failed (no /bin/sh, no node binary): there may be no 'close'
      child.once('error', (err) => finish(null, null, err))
    })
    // a death before `ready` fails whoever waits for it
    this.ready = Promise.race([this.ready, this.exited.then(() => Promise.reject(this.#deathError()))])
  }

  /** Makes the directory and starts the child; `ready` resolves once it has loaded ONNX Runtime. */
  static async spawn(init: ProcessInit): Promise<ModelProcess> {
    const dir = await mkdtemp(join(init.root, SANDBOX_DIR_PREFIX))
    const { file, args } = childCommand({ ...init.config, dir }, init.addressSpaceBytes)
    const child = spawn(file, args, {
      cwd: dir,
      env: sandboxEnv(init.env ?? process.env, dir),
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      // its own process group: a signal to the node's group (Ctrl-C, a supervisor) reaches the node, and the
      // child, seeing its pipe close, removes its directory and exits
      detached: true,
      windowsHide: true,
    })
    // below the node's priority: a model that spins keeps its own core busy, not consensus
    if (child.pid !== undefined)
      try {
        setPriority(child.pid, MODEL_PROCESS_NICE)
      } catch {
        // not permitted here (some containers): the limits still hold
      }
    return new ModelProcess(dir, child, init)
  }

  get pid(): number | undefined {
    return this.#child.pid
  }

  get alive(): boolean {
    return !this.#dead
  }

  /** A request is written or waiting. */
  get busy(): boolean {
    return this.#inFlight > 0
  }

  /** Sends `header` (+ `payload`) once the previous request is answered; resolves with the reply frame or rejects with its typed error. */
  request(header: Header, payload: readonly Uint8Array[] = [], options: RequestOptions = {}): Promise<Frame> {
    this.#inFlight++
    const run = this.#tail.then(() => this.#send(header, payload, options))
    this.#tail = run.catch(() => {})
    return run.finally(() => this.#inFlight--)
  }

  #send(header: Header, payload: readonly Uint8Array[], options: RequestOptions): Promise<Frame> {
    if (this.#dead) return Promise.reject(this.#deathError())
    const id = this.#nextId++
    return new Promise<Frame>((resolve, reject) => {
      let cancel = (): void => {}
      const settle = (): void => {
        cancel()
        this.#pending.delete(id)
      }
      this.#pending.set(id, {
        resolve: (frame) => {
          settle()
          resolve(frame)
        },
        reject: (err) => {
          settle()
          reject(err)
        },
        ...(options.onProgress === undefined ? {} : { progress: options.onProgress }),
      })
      if (options.limitMs !== undefined) {
        const limit = options.limit ?? 'run-time'
        const ms = options.limitMs
        cancel = this.#clock.setTimer(ms, () =>
          this.kill(
            new ModelLimitError(
              limit,
              `the model took longer than ${ms} ms (${limit} limit); its process was stopped`,
              { details: { limitMs: ms } },
            ),
          ),
        )
      }
      const parts = encodeFrame({ ...header, id }, payload)
      this.#channel.cork()
      for (const p of parts) this.#channel.write(p)
      this.#channel.uncork()
    })
  }

  #onData(chunk: Buffer): void {
    let frames: Frame[]
    try {
      frames = this.#reader.push(chunk)
    } catch (err) {
      const tooLarge = err instanceof FrameError && err.tooLarge
      this.kill(
        tooLarge
          ? new ModelLimitError(
              'output-size',
              `the model's process sent more than the output bound: ${(err as Error).message}`,
            )
          : new ModelLimitError('crashed', `the model's process sent a malformed frame: ${(err as Error).message}`),
      )
      return
    }
    // `tokens` frames of one run read together go to its listener as one
    for (const { header, payload } of joinTokenFrames(frames)) {
      const id = header.op === 'ready' ? 0 : Number(header.id)
      const pending = this.#pending.get(id)
      if (pending === undefined) continue
      if (PROGRESS_OPS.has(header.op)) {
        try {
          pending.progress?.(header)
        } catch (err) {
          // a listener's failure must not fail the run, nor escape the pipe's 'data' handler
          this.#log.warn({ pid: this.#child.pid, err: (err as Error).message }, 'progress listener failed')
        }
        continue
      }
      if (header.op === 'error') pending.reject(errorFromWire(header.error as WireError))
      else pending.resolve({ header, payload })
    }
  }

  /** Resolves once every request sent so far is answered (or failed). */
  async drained(): Promise<void> {
    await this.#tail
  }

  /** Ends the child at once; what is pending fails with `error` (when given). */
  kill(error?: Error): void {
    if (this.#dead) return
    this.#killedWith ??= error
    this.#child.kill('SIGKILL')
  }

  #deathError(): Error {
    if (this.#killedWith !== undefined) return this.#killedWith
    const exit = this.#child.signalCode ?? this.#child.exitCode
    const lines = this.#stderr
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '')
    // the cause (V8's or the C++ runtime's) comes before the stack trace that ends the output
    const lastWords = lines.find((l) => CAUSE.test(l)) ?? lines.at(-1) ?? ''
    return new ModelLimitError(
      'crashed',
      `the model's process died (${String(exit)})${lastWords === '' ? '' : `: ${lastWords.slice(0, 300)}`}`,
      {
        details: { exit: String(exit), pid: this.#child.pid },
      },
    )
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.#dead = true
    const error = this.#deathError()
    if (this.#killedWith === undefined)
      this.#log.warn({ pid: this.#child.pid, code, signal, err: error.message }, 'model process died')
    for (const pending of [...this.#pending.values()]) pending.reject(error)
    this.#pending.clear()
  }

  /** Resident memory in bytes (undefined when it cannot be read). */
  async rssBytes(): Promise<number | undefined> {
    const pid = this.#child.pid
    if (pid === undefined || this.#dead) return undefined
    return readRss(pid)
  }

  /**
   * Ends the child and waits until its directory is gone: closes the pipe, so the child removes its
   * directory itself and exits (done even if the node exits right after), and kills it when it has
   * not gone within `CLOSE_GRACE_MS` (a run still in ONNX Runtime).
   */
  async close(): Promise<void> {
    if (this.#dead) return this.exited
    this.#killedWith ??= new AbortError('the model process was closed')
    this.#channel.end()
    const cancel = this.#clock.setTimer(CLOSE_GRACE_MS, () => this.kill())
    await this.exited
    cancel()
  }
}

const execFileAsync = promisify(execFile)

/** A process's resident set in bytes: `/proc/<pid>/status` on Linux, `ps` elsewhere. */
export async function readRss(pid: number, platform = process.platform): Promise<number | undefined> {
  try {
    if (platform === 'linux') {
      const status = await readFile(`/proc/${pid}/status`, 'utf8')
      const kib = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1]
      return kib === undefined ? undefined : Number(kib) * 1024
    }
    const { stdout } = await execFileAsync('ps', ['-o', 'rss=', '-p', String(pid)])
    const kib = Number(stdout.trim())
    return Number.isFinite(kib) && kib > 0 ? kib * 1024 : undefined
  } catch {
    return undefined
  }
}
