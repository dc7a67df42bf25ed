/**
 * Stake-weighted, deterministic proposer selection.
 *
 * Choice: a stake-weighted draw from sha256("donghae/proposer/v1" || seed || height || round), not
 * CometBFT's weighted round-robin. Both give each validator a share of proposals proportional to
 * its power. The round-robin's priorities are state carried from height to height, and they move
 * once per round actually played, so the proposer of (h, r) depends on how many rounds every
 * earlier height took: a restarted or syncing node must replay that history (and the priorities
 * must be committed in the chain state) to agree. The draw is a pure function of
 * (validator set, height, round, seed): nothing to persist or replay, O(n) per call, and a
 * Byzantine proposer cannot steer it because the seed is fixed per chain or epoch (an epoch's start
 * hash, decided before the epoch's heights). What the round-robin does better: it bounds how far
 * a validator's count can drift from its share over a short window; the draw is only proportional
 * in expectation (streaks happen), which costs some fairness of rewards, not safety or liveness.
 *
 * Reduction of the 256-bit hash modulo the total power has a bias below total/2^256: negligible.
 */
import { utf8 } from '../../core/bytes.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { sha256 } from '../../core/hash.ts'
import type { Validator, ValidatorSet } from './types.ts'

const TAG = utf8('donghae/proposer/v1')

/** The proposer of (height, round) for `set`; `seed` is the chain's or epoch's proposer seed. */
export function selectProposer(
  set: ValidatorSet,
  height: number,
  round: number,
  seed: Uint8Array = new Uint8Array(0),
): Validator {
  if (!Number.isSafeInteger(height) || height < 0 || !Number.isSafeInteger(round) || round < 0) {
    throw new InvalidInputError('height and round must be non-negative safe integers')
  }
  if (set.validators.length === 0 || set.totalPower <= 0n) throw new InvalidInputError('the validator set is empty')
  const position = new Uint8Array(12)
  const view = new DataView(position.buffer)
  view.setBigUint64(0, BigInt(height))
  view.setUint32(8, round)
  const digest = sha256(TAG, seed, position)
  const ticket = BigInt(`0x${Buffer.from(digest).toString('hex')}`) % set.totalPower
  let cumulative = 0n
  for (const validator of set.validators) {
    cumulative += validator.power
    if (ticket < cumulative) return validator
  }
  return set.validators[set.validators.length - 1] as Validator
}
