/**
 * Expert rewards (seed 001 §10.4) in fixed point, no floating point:
 *
 *   total_reward = base × usage × speed × quality × recency
 *   usage   = min(epoch calls / 100, 2.0)                 routings gateways reported (and paid for)
 *   speed   = max(0.5, 2.0 - mean latency per call, s)    the gateways' measured latency
 *   quality = 1.0 + accuracy of the block's accepted score (validators' median, ppm)
 *   recency = 1.0 if used within `expertRecencyBlocks` blocks, else 0.8
 *
 * Each factor is an integer in ppm (1.0 = 1 000 000); the product is taken left to right,
 * rounding down after each multiplication. There is no base minted: at each epoch edge the whole
 * experts pool (usage fees and kept bonds) is split pro rata to the weights of the blocks used
 * this epoch (`splitProRata`, in block-hash order) and paid to each block's miner; the rounding
 * leftover stays in the pool. With no block used, the pool waits for the next epoch.
 *
 * Worked example (rewards.test.ts): 150 calls, 120 000 ms over them (800 ms each), accuracy
 * 400 000 ppm, used this epoch:
 *   usage 1 500 000 × speed 1 200 000 = 1 800 000; × quality 1 400 000 = 2 520 000; × 1.0 = 2 520 000
 */
import type { BlockContext } from '../../chain/host.ts'
import type { StateOverlay } from '../../chain/state-view.ts'
import { credit } from '../../bank/bank.ts'
import { splitProRata } from '../../inference/chain/rewards.ts'
import {
  POOL_KEY,
  USED,
  poolBalance,
  readBlock,
  readFamily,
  readUsage,
  writeAmount,
  writeFamily,
  writeUsage,
  type ExpertsParams,
} from './state.ts'

export const PPM = 1_000_000n
const MAX_USAGE = 2_000_000n
const MAX_SPEED = 2_000_000n
const MIN_SPEED = 500_000n
const STALE_RECENCY = 800_000n

export interface WeightInputs {
  epochCalls: bigint
  epochLatencyMs: bigint
  /** Accuracy of the block's accepted score, ppm (0 without one). */
  accuracyPpm: number
  lastUsedHeight: number
}

export function usageFactor(calls: bigint): bigint {
  const usage = (calls * PPM) / 100n
  return usage > MAX_USAGE ? MAX_USAGE : usage
}

export function speedFactor(latencyMs: bigint, calls: bigint): bigint {
  if (calls <= 0n) return MIN_SPEED
  const speed = MAX_SPEED - (latencyMs * 1_000n) / calls
  return speed < MIN_SPEED ? MIN_SPEED : speed
}

export function qualityFactor(accuracyPpm: number): bigint {
  return PPM + BigInt(Math.min(Math.max(accuracyPpm, 0), 1_000_000))
}

export function recencyFactor(lastUsedHeight: number, height: number, recencyBlocks: number): bigint {
  return lastUsedHeight >= height - recencyBlocks ? PPM : STALE_RECENCY
}

/** usage × speed × quality × recency, ppm. */
export function expertWeight(inputs: WeightInputs, height: number, recencyBlocks: number): bigint {
  const factors = [
    usageFactor(inputs.epochCalls),
    speedFactor(inputs.epochLatencyMs, inputs.epochCalls),
    qualityFactor(inputs.accuracyPpm),
    recencyFactor(inputs.lastUsedHeight, height, recencyBlocks),
  ]
  return factors.reduce((w, f) => (w * f) / PPM, PPM)
}

/** At an epoch edge: pays the pool to the miners of the blocks used this epoch, resets the epoch counters. */
export function payExpertRewards(state: StateOverlay, ctx: BlockContext, params: ExpertsParams): void {
  if (ctx.height % params.epochLength !== 0) return
  const used = USED.list(state).sort()
  if (used.length === 0) return
  const pool = poolBalance(state)
  const weights = used.flatMap((hash) => {
    const usage = readUsage(state, hash)
    const block = readBlock(state, hash)
    if (usage === undefined || block === undefined || usage.epochCalls === 0n) return []
    const weight = expertWeight(
      {
        epochCalls: usage.epochCalls,
        epochLatencyMs: usage.epochLatencyMs,
        accuracyPpm: block.score?.accuracyPpm ?? 0,
        lastUsedHeight: usage.lastUsedHeight,
      },
      ctx.height,
      params.expertRecencyBlocks,
    )
    return [{ did: hash, score: weight, miner: block.header.miner, family: block.header.chainId }]
  })
  const { shares, leftover } = splitProRata(pool, weights)
  const families = new Set<string>()
  for (const share of shares) {
    const w = weights.find((x) => x.did === share.did)
    if (w === undefined) continue
    families.add(w.family)
    const usage = readUsage(state, share.did)
    if (usage === undefined) continue
    if (share.amount > 0n) {
      credit(state, w.miner, share.amount)
      usage.rewards += share.amount
      ctx.emit({
        type: 'experts.reward',
        attributes: {
          block: share.did,
          miner: w.miner,
          family: w.family,
          amount: String(share.amount),
          weightPpm: String(w.score),
        },
      })
    }
    writeUsage(state, share.did, { ...usage, epochCalls: 0n, epochLatencyMs: 0n })
  }
  writeAmount(state, POOL_KEY, leftover)
  for (const hash of used) {
    USED.delete(state, hash)
    const usage = readUsage(state, hash)
    if (usage !== undefined && usage.epochCalls !== 0n)
      writeUsage(state, hash, { ...usage, epochCalls: 0n, epochLatencyMs: 0n })
  }
  for (const family of families) {
    const record = readFamily(state, family)
    if (record !== undefined) writeFamily(state, { ...record, epochCalls: 0n })
  }
}
