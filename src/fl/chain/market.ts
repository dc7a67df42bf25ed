/**
 * Into the market (issue 15, part 4): the global model of a finished FL task with a `price` is
 * registered in the inference market, with its lineage, by `registerModelWithLineage`
 * (src/inference/chain/lineage.ts) - the registry's own rules (name ownership, unique CID, new
 * version) on a forked state, all or nothing.
 *
 *   cid          the ONNX export of the global model the majority of its round agreed on
 *                (src/fl/blob.ts `encodeOnnx`, named by each vote beside its aggregate)
 *   name         the task's name; version `fl-<task id>`; owner the task's creator; price the task's
 *   spec         the task's MLP as the export lays it out: input `input` float32 [N, widths[0]],
 *                output `probabilities` float32 [N, last width], the demo models' tolerance
 *                (FL tasks name no registered model: their initial model is an FL blob)
 *   deposit      the market's `modelDeposit`, escrowed at `fl.create`; it stays with the model
 *   lineage      source 'fl', the task, the round whose aggregate it is, parent = the initial
 *                model's CID, contributors = the creator, then the participants the task paid
 *                (most paid first, then by DID), at most MAX_LINEAGE_CONTRIBUTORS
 *
 * A failure is a reason, never a throw: the caller records it and returns the deposit.
 */
import { TxError } from '../../chain/errors.ts'
import type { StateOverlay } from '../../chain/state-view.ts'
import { registerModelWithLineage, type LineageContributor } from '../../inference/chain/lineage.ts'
import type { ModelSpec, Tolerance } from '../../inference/chain/state.ts'
import type { MarketOutcome, ParticipantRecord, RoundRecord, TaskRecord } from './state.ts'

/** Most contributors a registered FL model lists (the creator included): each usage fee credits each one. */
export const MAX_LINEAGE_CONTRIBUTORS = 32
/** The ONNX export's tensor names (src/inference/onnx-export.ts `mlpGraph` defaults). */
export const FL_ONNX_INPUT = 'input'
export const FL_ONNX_OUTPUT = 'probabilities'
/** Outputs are probabilities in [0, 1], as the demo MLPs' (DEMO_TOLERANCE). */
export const FL_MODEL_TOLERANCE: Readonly<Tolerance> = Object.freeze({ maxAbsPpm: 10_000, top1: true })

/** The version a task's model is registered under. */
export const flModelVersion = (task: number): string => `fl-${task}`

/** The registry spec of a task's global model, exported as `onnx` (cid and size). */
export function flModelSpec(task: TaskRecord, onnx: { cid: string; bytes: number }, price: bigint): ModelSpec {
  return {
    cid: onnx.cid,
    name: task.name,
    version: flModelVersion(task.id),
    price,
    kind: 'tensor',
    inputs: [{ name: FL_ONNX_INPUT, type: 'float32', dims: [null, task.widths[0] as number] }],
    outputs: [{ name: FL_ONNX_OUTPUT, type: 'float32', dims: [null, task.widths[task.widths.length - 1] as number] }],
    tolerance: { ...FL_MODEL_TOLERANCE },
    size: onnx.bytes,
  }
}

/**
 * The creator, then each participant the task paid - 'trainer' when it was ever paid as a
 * proposer, else 'validator' - most paid first, then by DID; deduplicated, capped.
 */
export function flContributors(
  task: TaskRecord,
  participants: readonly ParticipantRecord[],
  rounds: readonly RoundRecord[],
): LineageContributor[] {
  const proposed = new Set<string>()
  for (const r of rounds) for (const p of r.payouts ?? []) if (r.proposers.includes(p.did)) proposed.add(p.did)
  const paid = participants
    .filter((p) => p.paid > 0n && p.did !== task.creator)
    .sort((a, b) => (a.paid === b.paid ? (a.did < b.did ? -1 : a.did > b.did ? 1 : 0) : a.paid > b.paid ? -1 : 1))
  return [
    { did: task.creator, role: 'creator' },
    ...paid.map((p) => ({ did: p.did, role: proposed.has(p.did) ? 'trainer' : 'validator' })),
  ].slice(0, MAX_LINEAGE_CONTRIBUTORS)
}

/** Registers a finished task's global model (see the file comment); the outcome, registered or with its reason. */
export function registerGlobalModel(
  state: StateOverlay,
  task: TaskRecord,
  participants: readonly ParticipantRecord[],
  rounds: readonly RoundRecord[],
  height: number,
): MarketOutcome {
  const round = task.globalRound ?? 0
  const outcome = (registered: boolean, reason?: string): MarketOutcome => ({
    cid: task.onnx?.cid ?? '',
    name: task.name,
    version: flModelVersion(task.id),
    round,
    registered,
    ...(reason === undefined ? {} : { reason }),
  })
  if (task.price === undefined) return outcome(false, 'no-price')
  if (round === 0) return outcome(false, 'no-global-model')
  if (task.onnx === undefined) return outcome(false, 'no-onnx')
  const scratch = state.fork()
  try {
    registerModelWithLineage(scratch, task.creator, flModelSpec(task, task.onnx, task.price), height, task.deposit, {
      source: 'fl',
      task: String(task.id),
      round,
      parent: task.initial.cid,
      contributors: flContributors(task, participants, rounds),
    })
  } catch (err) {
    if (err instanceof TxError) return outcome(false, err.reason)
    throw err
  }
  scratch.merge()
  return outcome(true)
}
