/** Drives content-node.ts processes (a content store each) from a test or a bench. */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const SCRIPT = fileURLToPath(new URL('./content-node.ts', import.meta.url))

export interface FetchAnswer {
  cid: string
  size: number
  blocks: number
  fetchedBlocks: number
  fetchedBytes: number
  fromPeers: Record<string, number>
  invalidFrom: Record<string, number>
  sha256: string
  ms: number
}

/** What a content node answers to `run`: the model's output hash after a verified load. */
export interface RunAnswer {
  outputHash: string
  top: { index: number; p: number }
  ep: string
  readMs: number
  loadMs: number
  runMs: number
}

export interface Progress {
  percent: number
  bytes: number
  totalBytes?: number
  fromPeers: Record<string, number>
}

export class ContentProc {
  readonly child: ChildProcess
  readonly did: string
  readonly addr: string
  readonly #waiting = new Map<
    number,
    { resolve(v: Record<string, unknown>): void; reject(e: Error): void; progress?(p: Progress): void }
  >()
  #next = 1
  #stderr = ''

  private constructor(child: ChildProcess, ready: { did: string; addr: string }) {
    this.child = child
    this.did = ready.did
    this.addr = ready.addr
  }

  /** Starts `node content-node.ts <dir> [perPeer maxInFlight]` and waits for it to listen. */
  static async start(dir: string, tuning: { perPeer?: number; maxInFlight?: number } = {}): Promise<ContentProc> {
    const args = [SCRIPT, dir]
    if (tuning.perPeer !== undefined)
      args.push(String(tuning.perPeer), String(tuning.maxInFlight ?? tuning.perPeer * 3))
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-8_000)))
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    const ready = await new Promise<{ did: string; addr: string }>((resolve, reject) => {
      const onExit = (code: number | null): void =>
        reject(new Error(`content node exited (${String(code)}): ${stderr}`))
      child.once('exit', onExit)
      lines.once('line', (line) => {
        child.off('exit', onExit)
        resolve(JSON.parse(line) as { did: string; addr: string })
      })
    })
    const proc = new ContentProc(child, ready)
    proc.#stderr = stderr
    child.stderr?.on('data', (c: string) => (proc.#stderr = (proc.#stderr + c).slice(-8_000)))
    lines.on('line', (line) => proc.#line(line))
    child.once('exit', (code, signal) => {
      for (const w of proc.#waiting.values())
        w.reject(new Error(`content node exited (${String(code ?? signal)}): ${proc.#stderr}`))
      proc.#waiting.clear()
    })
    return proc
  }

  #line(line: string): void {
    let message: Record<string, unknown>
    try {
      message = JSON.parse(line) as Record<string, unknown>
    } catch {
      return
    }
    const waiter = this.#waiting.get(Number(message.id))
    if (waiter === undefined) return
    if (message.progress !== undefined) {
      waiter.progress?.(message.progress as Progress)
      return
    }
    this.#waiting.delete(Number(message.id))
    if (message.error !== undefined) waiter.reject(new Error(`${String(message.code)}: ${String(message.error)}`))
    else waiter.resolve(message)
  }

  call(
    cmd: string,
    fields: Record<string, unknown> = {},
    progress?: (p: Progress) => void,
  ): Promise<Record<string, unknown>> {
    const id = this.#next++
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject, ...(progress === undefined ? {} : { progress }) })
      this.child.stdin?.write(`${JSON.stringify({ id, cmd, ...fields })}\n`)
    })
  }

  generate(size: number, seed: string): Promise<{ cid: string; size: number; sha256: string; ms: number }> {
    return this.call('generate', { size, seed }) as never
  }

  /** Adds the file at `path` (on this machine) to the node's store. */
  add(path: string): Promise<{ cid: string; size: number; ms: number }> {
    return this.call('add', { path }) as never
  }

  /**
   * Reads the file `cid` back from the store, loads it into ONNX Runtime (CID and safety checks
   * first) and runs it once on `inputs` (the tensor JSON form, e.g. `tensorToB64Json`).
   */
  run(cid: string, inputs: Record<string, unknown>): Promise<RunAnswer> {
    return this.call('run', { cid, inputs }) as never
  }

  async dial(other: ContentProc): Promise<void> {
    await this.call('dial', { addr: other.addr })
  }

  fetch(cid: string, progress?: (p: Progress) => void): Promise<FetchAnswer> {
    return this.call('fetch', { cid }, progress) as never
  }

  /** Closes the store and waits for the process to exit (kills it after 10 s). */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()))
    this.call('stop').catch(() => {})
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }

  stderr(): string {
    return this.#stderr
  }
}
