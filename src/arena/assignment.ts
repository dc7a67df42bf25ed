/**
 * Which validation set each validator scores each submission on, drawn from a block id.
 *
 * Every validator of a task scores every submission that is not a duplicate. For each
 * submission the validators are ordered by sha256(seed || submission index || DID); the first half
 * (rounded up when a seed bit says so) score it on set A, the rest on set B. So each submission is
 * scored on both sets whenever it has two validators or more, and no trainer or validator knows
 * before the draw (the id of the last block of the publish window) which validator scores which
 * set. Pure: the chain stores the seed and the lists, and anyone recomputes the assignment.
 */
import { concat, toHex, utf8 } from '../core/bytes.ts'
import { sha256 } from '../core/hash.ts'
import type { ValidationSetName } from './scoring.ts'

export interface Assignment {
  submission: number
  set: ValidationSetName
}

function indexBytes(index: number): Uint8Array {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, index)
  return out
}

/** The sets of every (validator, submission) pair: validator -> its assignments by submission index. */
export function drawAssignments(
  seed: Uint8Array,
  submissions: readonly number[],
  validators: readonly string[],
): Map<string, Assignment[]> {
  const out = new Map<string, Assignment[]>(validators.map((v) => [v, []]))
  for (const submission of [...submissions].sort((a, b) => a - b)) {
    const order = validators
      .map((did) => ({ did, key: toHex(sha256(seed, indexBytes(submission), utf8(did))) }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    const tip = sha256(concat(seed, indexBytes(submission)))[0] ?? 0
    const onA = Math.floor(order.length / 2) + (order.length % 2 === 1 && (tip & 1) === 1 ? 1 : 0)
    order.forEach(({ did }, i) => out.get(did)?.push({ submission, set: i < onA ? 'A' : 'B' }))
  }
  return out
}

/** One validator's assignments (empty when it is not one of `validators`). */
export function assignmentOf(
  seed: Uint8Array,
  submissions: readonly number[],
  validators: readonly string[],
  did: string,
): Assignment[] {
  if (!validators.includes(did)) return []
  return drawAssignments(seed, submissions, validators).get(did) ?? []
}
