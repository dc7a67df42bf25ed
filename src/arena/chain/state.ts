/**
 * The arena module's state: keys, records and the reads that queries share with the handlers.
 * Every key is under `arena/`; values are dag-cbor; money is bigint. Sets are `IndexedSet`s.
 *
 *   seq                        the last task id (tasks are numbered from 1)
 *   task/<id>                  TaskRecord
 *   tasks/...                    IndexedSet of every task id (decimal)
 *   open/...                     IndexedSet of open task ids
 *   due/draw/<height>/...        tasks whose draw happens at the start of that block
 *   due/settle/<height>/...      tasks settled at the end of that block (their reveal deadline)
 *   bond/<id>/<did>            BondRecord { role, amount }
 *   trainers/<id>/...            IndexedSet of the task's trainers
 *   validators/<id>/...          IndexedSet of the task's validators
 *   sub/<id>/<n>               SubmissionRecord (n = commitment order from 0)
 *   subOf/<id>/<did>           the trainer's submission index
 *   draw/<id>                  DrawRecord (seed, scored submissions, duplicates, validators)
 *   scommit/<id>/<did>         a validator's score commitment (32 bytes)
 *   sreveal/<id>/<did>         its revealed scores
 *   result/<id>                TaskResult (after settlement)
 *   escrow                     bigint: every open task's pool, model deposit and bonds
 *
 * `escrow` holds tokens taken from accounts; they stay in the supply and no account owns them.
 */
import { asUint64 } from '../../core/uint.ts'
import { IndexedSet } from '../../chain/indexed-set.ts'
import { readState, type StateOverlay, type StateReader } from '../../chain/state-view.ts'
import type { RevealedScore } from '../commitments.ts'
import type {
  BondRecord,
  DrawRecord,
  SubmissionRecord,
  SubmissionResult,
  TaskRecord,
  TaskResult,
  ValidatorResult,
} from '../types.ts'

export const SEQ_KEY = 'arena/seq'
export const ESCROW_KEY = 'arena/escrow'
export const taskKey = (id: number): string => `arena/task/${id}`
export const bondKey = (id: number, did: string): string => `arena/bond/${id}/${did}`
export const submissionKey = (id: number, n: number): string => `arena/sub/${id}/${n}`
export const submissionOfKey = (id: number, did: string): string => `arena/subOf/${id}/${did}`
export const drawKey = (id: number): string => `arena/draw/${id}`
export const scoreCommitKey = (id: number, did: string): string => `arena/scommit/${id}/${did}`
export const scoreRevealKey = (id: number, did: string): string => `arena/sreveal/${id}/${did}`
export const resultKey = (id: number): string => `arena/result/${id}`

export const TASKS = new IndexedSet('arena/tasks')
export const OPEN = new IndexedSet('arena/open')
export const drawDue = (height: number): IndexedSet => new IndexedSet(`arena/due/draw/${height}`)
export const settleDue = (height: number): IndexedSet => new IndexedSet(`arena/due/settle/${height}`)
export const trainersSet = (id: number): IndexedSet => new IndexedSet(`arena/trainers/${id}`)
export const validatorsSet = (id: number): IndexedSet => new IndexedSet(`arena/validators/${id}`)

/** Drops undefined fields (dag-cbor has no undefined). */
export function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T
}

// ---- numbers -------------------------------------------------------------------------------

export function escrowBalance(state: StateReader): bigint {
  const value = readState<unknown>(state, ESCROW_KEY)
  return value === undefined ? 0n : asUint64(value, ESCROW_KEY)
}

export function addEscrow(state: StateOverlay, delta: bigint): void {
  const next = escrowBalance(state) + delta
  if (next === 0n) state.remove(ESCROW_KEY)
  else state.write(ESCROW_KEY, next)
}

export function nextTaskId(state: StateOverlay): number {
  const id = (readState<number>(state, SEQ_KEY) ?? 0) + 1
  state.write(SEQ_KEY, id)
  return id
}

// ---- tasks ----------------------------------------------------------------------------------

export function readTask(state: StateReader, id: number): TaskRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, taskKey(id))
  if (raw === undefined) return undefined
  return defined({
    ...(raw as unknown as TaskRecord),
    pool: asUint64(raw.pool, 'pool'),
    deposit: asUint64(raw.deposit, 'deposit'),
    price: raw.price === undefined ? undefined : asUint64(raw.price, 'price'),
  })
}

export function writeTask(state: StateOverlay, task: TaskRecord): void {
  state.write(taskKey(task.id), defined(task))
  TASKS.add(state, String(task.id))
}

/** Tasks, newest first; `status` filters; at most `limit`. */
export function listTasks(
  state: StateReader,
  options: { status?: TaskRecord['status']; limit?: number } = {},
): TaskRecord[] {
  const limit = Math.max(0, Math.min(options.limit ?? 100, 1_000))
  const last = readState<number>(state, SEQ_KEY) ?? 0
  const out: TaskRecord[] = []
  for (let id = last; id >= 1 && out.length < limit; id--) {
    const task = readTask(state, id)
    if (task === undefined) continue
    if (options.status !== undefined && task.status !== options.status) continue
    out.push(task)
  }
  return out
}

// ---- bonds ----------------------------------------------------------------------------------

export function readBond(state: StateReader, id: number, did: string): BondRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, bondKey(id, did))
  if (raw === undefined) return undefined
  return { role: raw.role as BondRecord['role'], amount: asUint64(raw.amount, 'amount') }
}

export function writeBond(state: StateOverlay, id: number, did: string, bond: BondRecord): void {
  state.write(bondKey(id, did), bond)
}

// ---- submissions ------------------------------------------------------------------------------

export function readSubmission(state: StateReader, id: number, n: number): SubmissionRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, submissionKey(id, n))
  return raw === undefined ? undefined : (raw as unknown as SubmissionRecord)
}

export function writeSubmission(state: StateOverlay, id: number, record: SubmissionRecord): void {
  state.write(submissionKey(id, record.index), defined(record))
}

export function submissionOf(state: StateReader, id: number, did: string): number | undefined {
  return readState<number>(state, submissionOfKey(id, did))
}

/** Every submission of a task, by index. */
export function listSubmissions(state: StateReader, task: TaskRecord): SubmissionRecord[] {
  const out: SubmissionRecord[] = []
  for (let n = 0; n < task.submissions; n++) {
    const s = readSubmission(state, task.id, n)
    if (s !== undefined) out.push(s)
  }
  return out
}

// ---- draw, scores, results ----------------------------------------------------------------------

export function readDraw(state: StateReader, id: number): DrawRecord | undefined {
  return readState<DrawRecord>(state, drawKey(id))
}

export function readScoreCommit(state: StateReader, id: number, did: string): Uint8Array | undefined {
  return readState<Uint8Array>(state, scoreCommitKey(id, did))
}

export function readScoreReveal(state: StateReader, id: number, did: string): RevealedScore[] | undefined {
  return readState<RevealedScore[]>(state, scoreRevealKey(id, did))
}

function submissionResultOf(raw: Record<string, unknown>): SubmissionResult {
  return defined({
    ...(raw as unknown as SubmissionResult),
    payout: asUint64(raw.payout, 'payout'),
    slashed: asUint64(raw.slashed, 'slashed'),
  })
}

function validatorResultOf(raw: Record<string, unknown>): ValidatorResult {
  return {
    ...(raw as unknown as ValidatorResult),
    stake: asUint64(raw.stake, 'stake'),
    payout: asUint64(raw.payout, 'payout'),
    slashed: asUint64(raw.slashed, 'slashed'),
  }
}

export function readResult(state: StateReader, id: number): TaskResult | undefined {
  const raw = readState<Record<string, unknown>>(state, resultKey(id))
  if (raw === undefined) return undefined
  return defined({
    ...(raw as unknown as TaskResult),
    submissions: (raw.submissions as Array<Record<string, unknown>>).map(submissionResultOf),
    validators: (raw.validators as Array<Record<string, unknown>>).map(validatorResultOf),
    trainerPool: asUint64(raw.trainerPool, 'trainerPool'),
    validatorPool: asUint64(raw.validatorPool, 'validatorPool'),
    refund: asUint64(raw.refund, 'refund'),
  })
}

export function writeResult(state: StateOverlay, result: TaskResult): void {
  state.write(resultKey(result.task), {
    ...result,
    submissions: result.submissions.map((s) => defined(s)),
    ...(result.winner === undefined ? {} : { winner: defined(result.winner) }),
  })
}
