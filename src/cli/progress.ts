/**
 * A progress bar for long transfers (model fetches), on stderr so stdout stays clean for `--json`:
 *
 *   [########............] 42% 84.0/200.0 MB 3 peers
 *
 * On a terminal the line is redrawn in place, at most every `intervalMs`; elsewhere (a log file,
 * a pipe, CI) one line is printed per 10 % reached, so logs stay short.
 */

export interface ProgressState {
  /** Bytes done so far. */
  bytes: number
  /** Bytes in all, when known. */
  totalBytes?: number
  /** Peers serving the transfer (omitted when not given). */
  peers?: number
}

export interface ProgressBarOptions {
  /** @default process.stderr */
  stream?: Pick<NodeJS.WriteStream, 'write'> & { isTTY?: boolean }
  /** Redraw in place. @default the stream is a terminal */
  tty?: boolean
  /** Cells of the bar. @default 20 */
  width?: number
  /** Text before the bar (e.g. the model's name). */
  label?: string
  /** Least time between redraws on a terminal. @default 100 ms */
  intervalMs?: number
  /** @default Date.now */
  now?: () => number
}

const UNITS: ReadonlyArray<[number, string]> = [
  [1e12, 'TB'],
  [1e9, 'GB'],
  [1e6, 'MB'],
  [1e3, 'kB'],
]

/** The unit that suits `bytes`, and its size. */
function unitOf(bytes: number): [number, string] {
  return UNITS.find(([size]) => bytes >= size) ?? [1, 'B']
}

function amount(bytes: number, [size, unit]: [number, string]): string {
  return size === 1 && unit === 'B' ? String(bytes) : (bytes / size).toFixed(1)
}

/** One line: `[#####.....] 42% 84.0/200.0 MB 3 peers` (without a known total: `84.0 MB 3 peers`). */
export function renderProgress(state: ProgressState, width = 20): string {
  const peers = state.peers === undefined ? '' : ` ${state.peers} ${state.peers === 1 ? 'peer' : 'peers'}`
  const total = state.totalBytes
  if (total === undefined || total <= 0) {
    const unit = unitOf(state.bytes)
    return `${amount(state.bytes, unit)} ${unit[1]}${peers}`
  }
  const done = Math.min(total, Math.max(0, state.bytes))
  // whole numbers first, then one division: 57/100 is 57 %, not 56.99...
  const filled = Math.floor((done * width) / total)
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`
  const unit = unitOf(total)
  return `${bar} ${Math.floor((done * 100) / total)}% ${amount(state.bytes, unit)}/${amount(total, unit)} ${unit[1]}${peers}`
}

export class ProgressBar {
  readonly #stream: Pick<NodeJS.WriteStream, 'write'>
  readonly #tty: boolean
  readonly #width: number
  readonly #label: string
  readonly #interval: number
  readonly #now: () => number
  #drawn = -Infinity
  #tenths = -1
  #last: ProgressState | undefined
  #finished = false

  constructor(options: ProgressBarOptions = {}) {
    const stream = options.stream ?? process.stderr
    this.#stream = stream
    this.#tty = options.tty ?? stream.isTTY === true
    this.#width = options.width ?? 20
    this.#label = options.label === undefined ? '' : `${options.label} `
    this.#interval = options.intervalMs ?? 100
    this.#now = options.now ?? Date.now
  }

  update(state: ProgressState): void {
    if (this.#finished) return
    this.#last = state
    if (this.#tty) {
      const now = this.#now()
      if (now - this.#drawn < this.#interval) return
      this.#drawn = now
      this.#stream.write(`\r${this.#label}${renderProgress(state, this.#width)}\x1b[K`)
      return
    }
    // not a terminal: a line each time another tenth is reached
    if (state.totalBytes === undefined || state.totalBytes <= 0) return
    const tenths = Math.floor((Math.min(state.totalBytes, state.bytes) * 10) / state.totalBytes)
    if (tenths <= this.#tenths) return
    this.#tenths = tenths
    this.#stream.write(`${this.#label}${renderProgress(state, this.#width)}\n`)
  }

  /** Draws the last state (if not drawn yet) and ends the line. */
  done(state?: ProgressState): void {
    if (this.#finished) return
    const last = state ?? this.#last
    if (this.#tty) {
      if (last !== undefined) this.#stream.write(`\r${this.#label}${renderProgress(last, this.#width)}\x1b[K`)
      this.#stream.write('\n')
    } else if (last !== undefined) {
      const complete = last.totalBytes !== undefined && last.totalBytes > 0 && last.bytes >= last.totalBytes
      if (!complete || this.#tenths < 10) this.#stream.write(`${this.#label}${renderProgress(last, this.#width)}\n`)
    }
    this.#finished = true
  }
}
