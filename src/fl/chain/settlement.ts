/**
 * The pure decisions of an FL Alliance round (FLock): who proposes and who votes, and how a round
 * settles. No state, no floating point: amounts are bigint, accuracies ppm integers.
 *
 * Roles. The task's participants, sorted by DID, are shuffled by a Fisher-Yates draw whose
 * randomness is sha-256(seed || i) (seed = sha-256 of the task, the round and the parent id of the
 * block that opens the round); the first `voters` are the round's voters, the rest its proposers
 * (kept in shuffled order: the order in which voters aggregate their updates).
 *
 * Settlement, at the end of the vote window:
 *   - the approving votes are grouped by (aggregate digest, aggregate CID, the CID and size of its
 *     ONNX export, excluded proposers): a vote naming another ONNX export than the majority's (or
 *     none where the majority names one) disagrees with it like a vote for another aggregate;
 *     a group holding more than half of the round's voters (not only of those who voted) is the
 *     majority and the round passes;
 *   - passed: the aggregate becomes the global model; the round's pay = remaining pool ÷ rounds
 *     left (this one included) is split equally between the proposers whose update is on chain and
 *     was not excluded by the majority and the voters of the majority (the rounding leftover stays
 *     in the pool); each proposer the majority excluded is slashed `slashPpm` of its remaining bond;
 *   - failed (no majority): nothing is paid; every proposer of the round and every voter who
 *     approved an aggregate is slashed `slashPpm` of its remaining bond.
 * So a round never pays more than its share of what is left, and the pool is never overdrawn
 * (settlement.test.ts checks both on random rounds).
 */
import { sha256 } from '../../core/hash.ts'
import { utf8 } from '../../core/bytes.ts'
import type { ModelRef, OnnxRef, Payout, Slash, VoteRecord } from './state.ts'

export const PPM = 1_000_000n

/** The seed a round's roles are drawn from. */
export function roleSeed(task: number, round: number, parentId: Uint8Array): Uint8Array {
  return sha256(utf8(`donghae/fl/roles/${task}/${round}`), parentId)
}

function draw(seed: Uint8Array, i: number, bound: number): number {
  const counter = new Uint8Array(4)
  new DataView(counter.buffer).setUint32(0, i)
  const digest = sha256(seed, counter)
  const view = new DataView(digest.buffer, digest.byteOffset, digest.byteLength)
  // 64 bits reduced modulo a bound <= 64: the bias is below 2^-58
  return Number(view.getBigUint64(0) % BigInt(bound))
}

/** Splits `participants` into the round's voters and proposers (see the file comment). */
export function splitRoles(
  seed: Uint8Array,
  participants: readonly string[],
  voters: number,
): { proposers: string[]; voters: string[] } {
  const order = [...participants].sort()
  for (let i = order.length - 1; i > 0; i--) {
    const j = draw(seed, i, i + 1)
    const tmp = order[i] as string
    order[i] = order[j] as string
    order[j] = tmp
  }
  return { voters: order.slice(0, voters), proposers: order.slice(voters) }
}

/** `slashPpm` of a bond, rounded down. */
export function slashOf(bond: bigint, slashPpm: number): bigint {
  return (bond * BigInt(slashPpm)) / PPM
}

/** The lower median of ppm values (0 when empty). */
export function lowerMedian(values: readonly number[]): number {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)] as number
}

export interface RoundInputs {
  /** What is left of the task's pool before this round pays. */
  pool: bigint
  /** Rounds left, this one included (>= 1). */
  roundsLeft: number
  proposers: readonly string[]
  voters: readonly string[]
  /** Proposers whose update is on chain. */
  uploaded: ReadonlySet<string>
  votes: readonly Pick<VoteRecord, 'did' | 'approve' | 'aggregate' | 'onnx' | 'accuracyPpm' | 'excluded'>[]
  /** Remaining bond of each participant of the round. */
  bonds: ReadonlyMap<string, bigint>
  slashPpm: number
}

export interface RoundOutcome {
  passed: boolean
  /** The majority's aggregate, exclusions, accuracy (lower median) and size (passed rounds). */
  aggregate?: ModelRef
  /** The ONNX export the majority named with it (absent when its votes named none). */
  onnx?: OnnxRef
  excluded: string[]
  accuracyPpm?: number
  majority: number
  /** The round's budget (remaining pool ÷ rounds left). */
  pay: bigint
  payouts: Payout[]
  slashes: Slash[]
  /** The pool after the payouts. */
  poolAfter: bigint
}

const groupKey = (v: Pick<VoteRecord, 'aggregate' | 'onnx' | 'excluded'>): string =>
  `${v.aggregate?.digest ?? ''}|${v.aggregate?.cid ?? ''}|${v.onnx?.cid ?? ''}|${v.onnx?.bytes ?? 0}|${[...v.excluded].sort().join(',')}`

/** Settles one round (see the file comment). */
export function settleRound(input: RoundInputs): RoundOutcome {
  const pay = input.roundsLeft > 0 ? input.pool / BigInt(input.roundsLeft) : 0n
  const voterSet = new Set(input.voters)
  const votes = input.votes.filter((v) => voterSet.has(v.did))
  const groups = new Map<string, typeof votes>()
  for (const v of votes) {
    if (!v.approve || v.aggregate === undefined) continue
    const key = groupKey(v)
    groups.set(key, [...(groups.get(key) ?? []), v])
  }
  const majority = [...groups.values()].find((g) => g.length * 2 > input.voters.length)
  const slash = (did: string, reason: Slash['reason']): Slash[] => {
    const amount = slashOf(input.bonds.get(did) ?? 0n, input.slashPpm)
    return amount > 0n ? [{ did, amount, reason }] : []
  }
  if (majority === undefined) {
    const approvers = votes.filter((v) => v.approve).map((v) => v.did)
    return {
      passed: false,
      excluded: [],
      majority: 0,
      pay,
      payouts: [],
      slashes: [
        ...input.proposers.flatMap((did) => slash(did, 'round-failed')),
        ...approvers.flatMap((did) => slash(did, 'approved-failed-round')),
      ],
      poolAfter: input.pool,
    }
  }
  const first = majority[0] as (typeof votes)[number]
  const excludedSet = new Set(first.excluded)
  const excluded = input.proposers.filter((did) => excludedSet.has(did) && input.uploaded.has(did))
  const agreeing = new Set(majority.map((v) => v.did))
  const recipients = [
    ...input.proposers.filter((did) => input.uploaded.has(did) && !excludedSet.has(did)),
    ...input.voters.filter((did) => agreeing.has(did)),
  ]
  const each = recipients.length === 0 ? 0n : pay / BigInt(recipients.length)
  const payouts = each === 0n ? [] : recipients.map((did) => ({ did, amount: each }))
  return {
    passed: true,
    aggregate: first.aggregate as ModelRef,
    ...(first.onnx === undefined ? {} : { onnx: first.onnx }),
    excluded,
    accuracyPpm: lowerMedian(majority.map((v) => v.accuracyPpm)),
    majority: majority.length,
    pay,
    payouts,
    slashes: excluded.flatMap((did) => slash(did, 'excluded')),
    poolAfter: input.pool - each * BigInt(payouts.length),
  }
}
