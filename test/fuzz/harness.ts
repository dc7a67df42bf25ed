/**
 * The fuzzing harness: what a target is, the oracle every target shares, and the loop that feeds
 * a target mutated and generated inputs for a time budget.
 *
 * Contract (issue 17.2): any input gives a valid result or the project's typed error
 * (`DonghaeError`); never a TypeError, RangeError or stack overflow, never a hang (each input is
 * timed), never an unbounded allocation (the long runner runs targets in a worker with a heap limit).
 *
 * Guidance: Jazzer.js's native part needs glibc 2.38 (this machine has an older one), so the loop
 * is outcome-guided instead of coverage-guided: every input gets a signature (the error's class
 * and code and its message with the numbers taken out, or a target's own label), and an input that
 * gives a signature not seen before joins the in-memory corpus, so later mutations build on it.
 */
import { DonghaeError } from '../../src/core/errors.ts'
import { mutate, type Rng } from './mutate.ts'

export type { Rng } from './mutate.ts'

/** An input broke the contract. `kind` says how; the runner saves the input under test/fuzz/crashes/. */
export class OracleViolation extends Error {
  override name = 'OracleViolation'
  readonly kind: 'crash' | 'hang'
  constructor(message: string, kind: 'crash' | 'hang' = 'crash', options?: { cause?: unknown }) {
    super(message, options)
    this.kind = kind
  }
}

export interface FuzzTarget {
  name: string
  /** What is fed to what, in one line (docs/fuzzing.md lists them). */
  description: string
  /** Valid inputs made by the real encoders: `seed.ts` writes them to corpus/<name>/. */
  seeds(): Uint8Array[] | Promise<Uint8Array[]>
  /** Fresh structured inputs (schema-driven or fast-check), besides mutations of the corpus. */
  generate?(rng: Rng): Uint8Array
  /** Inputs are dag-cbor: mutate the decoded value tree too (then re-encode canonically). */
  cbor?: boolean
  /** Inputs are text: mutations also splice in these tokens. */
  dictionary?: readonly string[]
  /** Starts what the target needs (a server, two libp2p hosts, a temporary home). */
  open?(): Promise<void>
  close?(): Promise<void>
  /**
   * Feeds one input. Returns the outcome's signature (for guidance); throws `OracleViolation`
   * when the contract is broken.
   */
  run(input: Uint8Array): string | Promise<string>
  /** One input taking longer than this is a hang. @default 1000 */
  timeoutMs?: number
  /** Largest input the mutator makes. @default 64 KiB */
  maxInputBytes?: number
}

/** A message without the input's own words in it: quoted text, long tokens and numbers masked. */
function mask(message: string): string {
  return message
    .slice(0, 120)
    .replace(/"[^"]*"?|'[^']*'?|`[^`]*`?/g, '"…"')
    .replace(/[\w:+/=.-]{16,}/g, '…')
    .replace(/\d+/g, '#')
    .slice(0, 80)
}

/** The signature of a thrown value, digits masked so "at 12" and "at 13" count as one outcome. */
export function signatureOf(err: unknown): string {
  if (err instanceof DonghaeError) return `${err.name}:${err.code}:${mask(err.message)}`
  if (err instanceof Error) return `${err.name}:${err.message.slice(0, 80)}`
  return `thrown:${typeof err}`
}

/**
 * The decoder oracle: `fn` returns, or throws a `DonghaeError`. Anything else thrown (TypeError,
 * RangeError, a stack overflow, a plain Error from a library) is a violation.
 */
export function expectTyped(fn: () => unknown): string {
  try {
    const value = fn()
    return `ok:${value === undefined || value === null ? String(value) : typeof value}`
  } catch (err) {
    if (err instanceof DonghaeError) return signatureOf(err)
    if (err instanceof OracleViolation) throw err
    throw new OracleViolation(`untyped error: ${describe(err)}`, 'crash', { cause: err })
  }
}

/** `expectTyped` for async decoders and handlers. */
export async function expectTypedAsync(fn: () => Promise<unknown>): Promise<string> {
  try {
    const value = await fn()
    return `ok:${value === undefined || value === null ? String(value) : typeof value}`
  } catch (err) {
    if (err instanceof DonghaeError) return signatureOf(err)
    if (err instanceof OracleViolation) throw err
    throw new OracleViolation(`untyped error: ${describe(err)}`, 'crash', { cause: err })
  }
}

export function describe(err: unknown): string {
  if (err instanceof Error) {
    const at = err.stack?.split('\n').find((l) => l.includes('/src/'))
    return `${err.name}: ${err.message.split('\n')[0]?.slice(0, 200) ?? ''}${at === undefined ? '' : ` (${at.trim()})`}`
  }
  return String(err)
}

/**
 * Runs one input against a target with the time bound: resolves to its signature, or throws
 * OracleViolation. An input over the bound is run again before it counts as a hang, so a
 * garbage-collection pause or a busy machine is not mistaken for one.
 */
export async function runOne(target: FuzzTarget, input: Uint8Array): Promise<string> {
  try {
    return await runTimed(target, input)
  } catch (err) {
    if (!(err instanceof OracleViolation) || err.kind !== 'hang') throw err
    return await runTimed(target, input)
  }
}

async function runTimed(target: FuzzTarget, input: Uint8Array): Promise<string> {
  const limit = target.timeoutMs ?? 1_000
  const started = performance.now()
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    const result = target.run(input)
    const signature =
      typeof result === 'string'
        ? result
        : await Promise.race([
            result,
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new OracleViolation(`no answer within ${limit} ms`, 'hang')), limit * 4)
            }),
          ])
    const ms = performance.now() - started
    if (ms > limit) throw new OracleViolation(`took ${Math.round(ms)} ms (limit ${limit} ms)`, 'hang')
    return signature
  } finally {
    clearTimeout(timer)
  }
}

export interface Finding {
  target: string
  kind: 'crash' | 'hang'
  message: string
  input: Uint8Array
}

export interface LoopStats {
  inputs: number
  findings: Finding[]
  signatures: number
  corpus: number
}

export interface LoopOptions {
  /** Stop at this performance.now() time. */
  until: number
  /** Stop after this many inputs. @default unlimited */
  maxInputs?: number
  rng: Rng
  /** Called before each input (the long runner copies it where its watchdog can read it). */
  beforeInput?(input: Uint8Array): void
  /** Stop after this many findings (the first is what matters). @default 5 */
  maxFindings?: number
}

/** The corpus-and-signatures state a target keeps across slices of a long run. */
export interface TargetState {
  corpus: Uint8Array[]
  seen: Set<string>
}

export function newState(corpus: Uint8Array[]): TargetState {
  return { corpus: corpus.length === 0 ? [new Uint8Array(0)] : [...corpus], seen: new Set() }
}

/** Mutation and generation loop over one target until the deadline. */
export async function fuzzLoop(target: FuzzTarget, state: TargetState, options: LoopOptions): Promise<LoopStats> {
  const { rng } = options
  const findings: Finding[] = []
  let inputs = 0
  const maxInputs = options.maxInputs ?? Number.POSITIVE_INFINITY
  const maxFindings = options.maxFindings ?? 5
  const mutateOptions = {
    cbor: target.cbor ?? false,
    dictionary: target.dictionary ?? [],
    maxBytes: target.maxInputBytes ?? 64 * 1024,
  }
  while (performance.now() < options.until && inputs < maxInputs && findings.length < maxFindings) {
    const input =
      target.generate !== undefined && rng.next() < 0.25
        ? target.generate(rng)
        : mutate(state.corpus[rng.int(0, state.corpus.length - 1)] as Uint8Array, state.corpus, rng, mutateOptions)
    options.beforeInput?.(input)
    inputs++
    try {
      const signature = await runOne(target, input)
      if (!state.seen.has(signature)) {
        state.seen.add(signature)
        if (state.corpus.length < 4_096) state.corpus.push(input)
      }
    } catch (err) {
      // anything else thrown out of a target (not a decoder's typed error) is a finding too
      const kind = err instanceof OracleViolation ? err.kind : 'crash'
      const message = err instanceof OracleViolation ? err.message : `the target threw ${describe(err)}`
      findings.push({ target: target.name, kind, message, input })
    }
  }
  return { inputs, findings, signatures: state.seen.size, corpus: state.corpus.length }
}
