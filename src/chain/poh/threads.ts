/** How PoH starts its worker threads. */
import { Worker, type WorkerOptions } from 'node:worker_threads'
import { jsWorkerUrl } from '../../core/js-worker.ts'

/**
 * A worker inherits the process's exec arguments. `--input-type` (valid only for `-e` or stdin)
 * makes a worker fail to load its file, so when the process has it, the worker gets the other
 * arguments explicitly. Otherwise Node's own inheritance is kept: explicit `execArgv` refuses
 * per-process flags that inheritance quietly drops.
 */
function workerExecArgv(): string[] | undefined {
  const args = process.execArgv
  if (!args.some((arg) => arg === '--input-type' || arg.startsWith('--input-type='))) return undefined
  const out: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string
    if (arg === '--input-type') i++
    else if (!arg.startsWith('--input-type=')) out.push(arg)
  }
  return out
}

/** A PoH thread on `file`, run as JavaScript (core/js-worker.ts: about 13 MB less per thread). */
export function spawnPohWorker(file: URL, options: Omit<WorkerOptions, 'execArgv'> = {}): Worker {
  const execArgv = workerExecArgv()
  return new Worker(jsWorkerUrl(file), execArgv === undefined ? options : { ...options, execArgv })
}
