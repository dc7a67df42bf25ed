/**
 * Pruning of settled jobs. Every settled job leaves a record in the chain state (its settlement,
 * and an audit or dispute record if it had one), and every settle transaction a batch record and
 * its height's batch count. Kept for ever, they made the state (which every node holds in memory)
 * grow by a few entries per job without bound (docs/reliability.md, "What holds the memory").
 *
 * A record is only read while something can still happen to its job:
 *  - a second settlement is refused as `already-settled` until the job is past its deadline plus
 *    the settle window, and as `expired` after it (settle.ts checks both, in that order);
 *  - a challenge, the drawn audits and a dispute's quorum run by height, within
 *    AUDIT_DELAY_BLOCKS + 1 + auditCandidates × auditSlotBlocks + 2 × disputeWindowBlocks of
 *    the settlement (audit.ts, draws.ts).
 * So at the start of each block the records of the oldest settle heights are removed once both
 * have passed: `pruneAfterBlocks` (those windows, twice over) behind the block's height, and every
 * job of the height's batches past its deadline plus the settle window by the block's time. The
 * walk goes height by height from PRUNE_NEXT_KEY (first written at the first block that runs this
 * code, so batches from before it, which carry no job ids, are left alone), at most
 * PRUNE_HEIGHTS_PER_BLOCK heights a block, and stops at the first height that must wait.
 *
 * After pruning a receipt can no longer be proven against the current state (receipt verify
 * --node says the record is gone); its batch root was certified at its settle height.
 */
import { toHex } from '../../core/bytes.ts'
import type { BlockContext } from '../../chain/host.ts'
import { readState, type StateOverlay } from '../../chain/state-view.ts'
import { AUDIT_DELAY_BLOCKS } from '../policy/audits.ts'
import {
  auditKey,
  batchCount,
  batchCountKey,
  batchKey,
  disputeKey,
  jobKey,
  PRUNE_NEXT_KEY,
  settleBatch,
  type InferenceParams,
  type SettleBatch,
} from './state.ts'

/** Settle heights looked at per block, at most (each costs its batches' reads and deletes). */
export const PRUNE_HEIGHTS_PER_BLOCK = 16

/**
 * Blocks after a settlement before its records may go: the challenge window, the audit slots and
 * a dispute's window, twice over (a governance change of the windows cannot outrun it).
 */
export function pruneAfterBlocks(
  params: Pick<InferenceParams, 'auditCandidates' | 'auditSlotBlocks' | 'disputeWindowBlocks'>,
): number {
  return 2 * (AUDIT_DELAY_BLOCKS + 1 + params.auditCandidates * params.auditSlotBlocks + 2 * params.disputeWindowBlocks)
}

/** Removes the records of settle heights that nothing can touch any more (see the module comment). */
export function pruneSettled(
  state: StateOverlay,
  ctx: Pick<BlockContext, 'height' | 'time'>,
  params: Pick<InferenceParams, 'auditCandidates' | 'auditSlotBlocks' | 'disputeWindowBlocks' | 'settleWindowMs'>,
): void {
  const next = readState<number>(state, PRUNE_NEXT_KEY)
  if (next === undefined) {
    state.write(PRUNE_NEXT_KEY, ctx.height)
    return
  }
  const last = ctx.height - pruneAfterBlocks(params)
  let height = next
  for (let walked = 0; height <= last && walked < PRUNE_HEIGHTS_PER_BLOCK; walked++, height++) {
    const count = batchCount(state, height)
    const batches: Array<SettleBatch | undefined> = []
    for (let n = 0; n < count; n++) batches.push(settleBatch(state, height, n))
    const waiting = batches.some(
      (b) => b?.lastDeadline !== undefined && ctx.time <= b.lastDeadline + params.settleWindowMs,
    )
    if (waiting) break
    for (let n = 0; n < count; n++) {
      for (const id of batches[n]?.jobIds ?? []) {
        const hex = toHex(id)
        state.remove(jobKey(hex))
        state.remove(auditKey(hex))
        state.remove(disputeKey(hex))
      }
      state.remove(batchKey(height, n))
    }
    if (count > 0) state.remove(batchCountKey(height))
  }
  if (height !== next) state.write(PRUNE_NEXT_KEY, height)
}
