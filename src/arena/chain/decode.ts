/**
 * Strict decoders for the arena's transaction bodies: every field typed and bounded, unknown
 * fields refused, each failure TxError('malformed', ...) naming the field. Rules that need state
 * (deadlines against the height, roles, commitments) are the handlers' (module.ts).
 */
import { DAG_PB_CODE, parseCid, RAW_CODE } from '../../core/cid.ts'
import {
  MODEL_NAME_PATTERN,
  amountOf,
  canonicalCid,
  fields,
  malformed,
  text,
  uint,
} from '../../inference/chain/decode.ts'
import { HASH_PATTERN } from '../../experts/chain/decode.ts'
import { PPM } from '../constants.ts'
import type { RevealedScore } from '../commitments.ts'
import type {
  ArenaRole,
  BaseModel,
  BondBody,
  CommitScoresBody,
  CreateBody,
  PublishBody,
  RevealScoresBody,
  SubmitBody,
  TrainingData,
} from '../types.ts'

export { malformed, refuse } from '../../inference/chain/decode.ts'

export const MIN_SALT_BYTES = 16
export const MAX_SALT_BYTES = 64
export const MAX_NOTE = 256
/** Most score entries one reveal may carry (maxTrainers of the largest task). */
export const MAX_SCORES = 1_024
/** Largest weights file a submission may declare (4 GiB). */
export const MAX_WEIGHTS_BYTES = 2 ** 32

function bytesOf(value: unknown, field: string, min: number, max: number): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length < min || value.length > max)
    malformed(min === max ? `${field} must be ${min} bytes` : `${field} must be ${min}-${max} bytes`)
  return value
}

const hash32 = (value: unknown, field: string): Uint8Array => bytesOf(value, field, 32, 32)
const salt = (value: unknown): Uint8Array => bytesOf(value, 'salt', MIN_SALT_BYTES, MAX_SALT_BYTES)

function height(value: unknown, field: string): number {
  const n = uint(value, field)
  if (n < 1 || n > 2 ** 40) malformed(`${field} must be a height, 1-2^40`)
  return n
}

export function taskId(value: unknown, field = 'task'): number {
  const n = uint(value, field)
  if (n < 1) malformed(`${field} must be a task id (1 or more)`)
  return n
}

function baseModelOf(value: unknown): BaseModel {
  const b = fields(value, 'baseModel', ['kind', 'cid', 'hash'])
  if (b.kind === 'model' && b.hash === undefined) return { kind: 'model', cid: canonicalCid(b.cid, 'baseModel.cid') }
  if (b.kind === 'metablock' && b.cid === undefined) {
    if (typeof b.hash !== 'string' || !HASH_PATTERN.test(b.hash))
      malformed('baseModel.hash must be a MetaBlock hash (64 hex characters)')
    return { kind: 'metablock', hash: b.hash }
  }
  return malformed("baseModel must be { kind: 'model', cid } or { kind: 'metablock', hash }")
}

function dataOf(value: unknown): TrainingData {
  const d = fields(value, 'data', ['kind', 'cid'])
  if (d.kind === 'public') return { kind: 'public', cid: canonicalCid(d.cid, 'data.cid') }
  if (d.kind === 'local' && d.cid === undefined) return { kind: 'local' }
  return malformed("data must be { kind: 'public', cid } or { kind: 'local' }")
}

export function decodeCreate(body: unknown): CreateBody {
  const b = fields(body, 'arena.create', [
    'name',
    'baseModel',
    'data',
    'validationCommitA',
    'validationCommitB',
    'submitDeadline',
    'publishDeadline',
    'scoreDeadline',
    'revealDeadline',
    'k1',
    'k2',
    'pool',
    'price',
    'note',
  ])
  if (typeof b.name !== 'string' || !MODEL_NAME_PATTERN.test(b.name))
    malformed('name must be 1-64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit')
  const out: CreateBody = {
    name: b.name,
    baseModel: baseModelOf(b.baseModel),
    data: dataOf(b.data),
    validationCommitA: hash32(b.validationCommitA, 'validationCommitA'),
    validationCommitB: hash32(b.validationCommitB, 'validationCommitB'),
    submitDeadline: height(b.submitDeadline, 'submitDeadline'),
    publishDeadline: height(b.publishDeadline, 'publishDeadline'),
    scoreDeadline: height(b.scoreDeadline, 'scoreDeadline'),
    revealDeadline: height(b.revealDeadline, 'revealDeadline'),
    k1: uint(b.k1, 'k1'),
    k2: uint(b.k2, 'k2'),
    pool: amountOf(b.pool, 'pool', { positive: true }),
  }
  if (b.price !== undefined) out.price = amountOf(b.price, 'price', { positive: true })
  if (b.note !== undefined) out.note = text(b.note, 'note', MAX_NOTE)
  if (out.k1 < 1 || out.k2 < 1) malformed('k1 and k2 must be at least 1')
  if (Buffer.compare(out.validationCommitA, out.validationCommitB) === 0)
    malformed('validationCommitA and validationCommitB must differ (two distinct hidden sets)')
  const order = [out.submitDeadline, out.publishDeadline, out.scoreDeadline, out.revealDeadline]
  if (order.some((h, i) => i > 0 && h <= (order[i - 1] as number)))
    malformed('deadlines must increase: submitDeadline < publishDeadline < scoreDeadline < revealDeadline')
  return out
}

function roleOf(value: unknown): ArenaRole {
  if (value !== 'trainer' && value !== 'validator') malformed("role must be 'trainer' or 'validator'")
  return value
}

export function decodeBond(body: unknown): BondBody {
  const b = fields(body, 'arena.bond', ['task', 'role', 'amount'])
  return { task: taskId(b.task), role: roleOf(b.role), amount: amountOf(b.amount, 'amount', { positive: true }) }
}

export function decodeSubmit(body: unknown): SubmitBody {
  const b = fields(body, 'arena.submit', ['task', 'commitment'])
  return { task: taskId(b.task), commitment: hash32(b.commitment, 'commitment') }
}

/**
 * The digest a weights CID names (its sha2-256 multihash digest): what a submission commits to
 * and what duplicates are found by. The CID is a file's, as the node's content store names it:
 * raw (a file of at most 256 KiB: the digest is the file's sha256) or a UnixFS root (dag-pb).
 */
export function weightsDigest(cid: string): Uint8Array {
  const parsed = parseCid(cid)
  if (parsed.code !== RAW_CODE && parsed.code !== DAG_PB_CODE)
    malformed('weightsCid must name a file: a raw CID or a UnixFS (dag-pb) root')
  return parsed.multihash.digest
}

export function decodePublish(body: unknown): PublishBody {
  const b = fields(body, 'arena.publish', ['task', 'weightsCid', 'size', 'salt'])
  const weightsCid = canonicalCid(b.weightsCid, 'weightsCid')
  weightsDigest(weightsCid)
  const size = uint(b.size, 'size')
  if (size < 1 || size > MAX_WEIGHTS_BYTES) malformed(`size must be 1-${MAX_WEIGHTS_BYTES} bytes`)
  return { task: taskId(b.task), weightsCid, size, salt: salt(b.salt) }
}

export function decodeCommitScores(body: unknown): CommitScoresBody {
  const b = fields(body, 'arena.commitScores', ['task', 'commitment'])
  return { task: taskId(b.task), commitment: hash32(b.commitment, 'commitment') }
}

function scoreList(value: unknown): RevealedScore[] {
  if (!Array.isArray(value) || value.length > MAX_SCORES) malformed(`scores must list at most ${MAX_SCORES} entries`)
  const seen = new Set<number>()
  return value.map((raw: unknown, i) => {
    const s = fields(raw, `scores[${i}]`, ['submission', 'set', 'score'])
    const submission = uint(s.submission, `scores[${i}].submission`)
    if (seen.has(submission)) malformed(`scores[${i}] repeats submission ${submission}`)
    seen.add(submission)
    if (s.set !== 'A' && s.set !== 'B') malformed(`scores[${i}].set must be 'A' or 'B'`)
    const score = uint(s.score, `scores[${i}].score`)
    if (score > PPM) malformed(`scores[${i}].score must be 0-${PPM} (ppm)`)
    return { submission, set: s.set, score }
  })
}

export function decodeRevealScores(body: unknown): RevealScoresBody {
  const b = fields(body, 'arena.revealScores', ['task', 'scores', 'salt'])
  return { task: taskId(b.task), scores: scoreList(b.scores), salt: salt(b.salt) }
}
