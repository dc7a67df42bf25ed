/**
 * A log file with size-based rotation, as a pino destination (`donghae node --log-file F`):
 * lines are appended synchronously; once the file would pass `maxBytes`, F.(keep-1) is dropped,
 * F.i moves to F.(i+1), F moves to F.1 and a new F is started. At most `keep` files besides F
 * exist, so the logs never take more than about (keep + 1) × maxBytes. Works the same on
 * macOS (launchd has no rotation of its own) and Linux.
 */
import { closeSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

/**
 * Largest size of the live log file before it rotates.
 * @default 10 MiB
 */
export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024

/**
 * Rotated files kept (F.1 ... F.keep).
 * @default 5
 */
export const DEFAULT_LOG_KEEP = 5

export interface RotatingLogOptions {
  /** @default DEFAULT_LOG_MAX_BYTES */
  maxBytes?: number
  /** @default DEFAULT_LOG_KEEP */
  keep?: number
}

export class RotatingLogFile {
  readonly path: string
  readonly #maxBytes: number
  readonly #keep: number
  #fd: number
  #size: number

  constructor(path: string, options: RotatingLogOptions = {}) {
    this.path = path
    this.#maxBytes = Math.max(1024, options.maxBytes ?? DEFAULT_LOG_MAX_BYTES)
    this.#keep = Math.max(1, options.keep ?? DEFAULT_LOG_KEEP)
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
    this.#fd = openSync(path, 'a', 0o600)
    this.#size = statSync(path).size
  }

  /** pino's DestinationStream. */
  write(line: string): void {
    const bytes = Buffer.byteLength(line)
    if (this.#size > 0 && this.#size + bytes > this.#maxBytes) this.#rotate()
    writeSync(this.#fd, line)
    this.#size += bytes
  }

  close(): void {
    closeSync(this.#fd)
  }

  #rotate(): void {
    closeSync(this.#fd)
    rmSync(`${this.path}.${this.#keep}`, { force: true })
    for (let i = this.#keep - 1; i >= 1; i--) {
      try {
        renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    }
    renameSync(this.path, `${this.path}.1`)
    this.#fd = openSync(this.path, 'a', 0o600)
    this.#size = 0
  }
}
