/**
 * Strict decoders for the fl module's transaction bodies: every field typed and bounded, unknown
 * fields refused. Each throws TxError('malformed', ...) naming the field. Rules that need state
 * (the task, the round, roles, windows, governed bounds) are the handlers' (module.ts), so such a
 * transaction is included as failed with its reason.
 */
import { amountOf, canonicalCid, didOf, fields, malformed, uint } from '../../inference/chain/decode.ts'
import { AggregationError, checkConditions, isAggregationRule, type AggregationRule } from '../aggregate.ts'
import type { ModelRef, OnnxRef, TaskTerms } from './state.ts'

export { malformed, refuse } from '../../inference/chain/decode.ts'

/** A task name: 1-64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit. */
export const TASK_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/
export const DIGEST_PATTERN = /^[0-9a-f]{64}$/
/** Most participants a task may have (a round's records list them). */
export const MAX_PARTICIPANTS = 64
/** Fewest voters a round draws. */
export const MIN_VOTERS = 3
export const MAX_ROUNDS = 1_000
export const MAX_JOIN_BLOCKS = 100_000
/** MLP layers (widths, input included) and the widest layer. */
export const MAX_WIDTHS = 8
export const MAX_WIDTH = 4_096
/**
 * Largest blob of an update or a model, bytes: one UnixFS chunk, so its CID is the raw CID of its
 * bytes in the content store and in the blob store alike (node/model-files.ts).
 */
export const MAX_FL_BLOB_BYTES = 256 * 1024
/** Most parameters a task's model may have: its float32 weights and the seal fit one blob. */
export const MAX_PARAMS = 60_000
export const MAX_SAMPLES = 10_000_000
export const PPM_MAX = 1_000_000

export type CreateBody = TaskTerms

export interface JoinBody {
  task: number
  /** Must equal the task's bond (what `spends` escrows). */
  bond: bigint
}

export interface UpdateBody {
  task: number
  round: number
  cid: string
  digest: string
  bytes: number
  samples: number
}

export interface VoteBody {
  task: number
  round: number
  approve: boolean
  aggregate?: ModelRef
  /** The ONNX export of `aggregate` (blob.ts `encodeOnnx`): what the market serves. */
  onnx?: OnnxRef
  accuracyPpm: number
  excluded: string[]
}

function bounded(value: unknown, field: string, min: number, max: number): number {
  const n = uint(value, field)
  if (n < min || n > max) malformed(`${field} must be ${min}-${max}`)
  return n
}

export function digestOf(value: unknown, field: string): string {
  if (typeof value !== 'string' || !DIGEST_PATTERN.test(value))
    malformed(`${field} must be a hex sha-256 (64 lowercase characters)`)
  return value
}

function modelRefOf(value: unknown, field: string): ModelRef {
  const m = fields(value, field, ['cid', 'digest'])
  return { cid: canonicalCid(m.cid, `${field}.cid`), digest: digestOf(m.digest, `${field}.digest`) }
}

/** An ONNX export named by a vote: its CID (one chunk: the raw CID of its bytes) and size. */
function onnxRefOf(value: unknown): OnnxRef {
  const o = fields(value, 'onnx', ['cid', 'bytes'])
  return { cid: canonicalCid(o.cid, 'onnx.cid'), bytes: bounded(o.bytes, 'onnx.bytes', 1, MAX_FL_BLOB_BYTES) }
}

/** Parameters of an MLP with these widths (weights and biases of each layer). */
export function paramCount(widths: readonly number[]): number {
  let n = 0
  for (let i = 0; i + 1 < widths.length; i++)
    n += (widths[i] as number) * (widths[i + 1] as number) + (widths[i + 1] as number)
  return n
}

function widthsOf(value: unknown): number[] {
  if (!Array.isArray(value) || value.length < 2 || value.length > MAX_WIDTHS)
    malformed(`widths must list 2-${MAX_WIDTHS} layer widths, input first`)
  const widths = value.map((w: unknown, i) => bounded(w, `widths[${i}]`, 1, MAX_WIDTH))
  if (paramCount(widths) > MAX_PARAMS)
    malformed(`the model has ${paramCount(widths)} parameters; at most ${MAX_PARAMS}`)
  return widths
}

function ruleOf(value: unknown): AggregationRule {
  if (!isAggregationRule(value)) malformed('rule must be fedavg, median, trimmed-mean, krum, multi-krum or bulyan')
  return value
}

const CREATE_FIELDS = [
  'name',
  'widths',
  'inputDivisor',
  'initial',
  'rule',
  'f',
  'rounds',
  'uploadBlocks',
  'voteBlocks',
  'joinBlocks',
  'pool',
  'bond',
  'participants',
  'voters',
  'slashPpm',
  'price',
]

export function decodeCreate(body: unknown): CreateBody {
  const b = fields(body, 'fl.create body', CREATE_FIELDS)
  if (typeof b.name !== 'string' || !TASK_NAME_PATTERN.test(b.name))
    malformed('name must be 1-64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit')
  const participants = bounded(b.participants, 'participants', MIN_VOTERS + 1, MAX_PARTICIPANTS)
  const voters = bounded(b.voters, 'voters', MIN_VOTERS, participants - 1)
  const rule = ruleOf(b.rule)
  const f = bounded(b.f, 'f', 0, MAX_PARTICIPANTS)
  try {
    checkConditions(rule, participants - voters, f)
  } catch (err) {
    if (!(err instanceof AggregationError)) throw err
    malformed(`the round's ${participants - voters} proposers do not meet the rule: ${err.message}`, err)
  }
  return {
    name: b.name,
    widths: widthsOf(b.widths),
    inputDivisor: bounded(b.inputDivisor, 'inputDivisor', 1, 65_535),
    initial: modelRefOf(b.initial, 'initial'),
    rule,
    f,
    rounds: bounded(b.rounds, 'rounds', 1, MAX_ROUNDS),
    uploadBlocks: bounded(b.uploadBlocks, 'uploadBlocks', 1, MAX_JOIN_BLOCKS),
    voteBlocks: bounded(b.voteBlocks, 'voteBlocks', 1, MAX_JOIN_BLOCKS),
    joinBlocks: bounded(b.joinBlocks, 'joinBlocks', 1, MAX_JOIN_BLOCKS),
    pool: amountOf(b.pool, 'pool', { positive: true }),
    bond: amountOf(b.bond, 'bond', { positive: true }),
    participants,
    voters,
    slashPpm: bounded(b.slashPpm, 'slashPpm', 0, PPM_MAX),
    // the market entry: the task's name is the model's; the handler checks the market's minimum
    ...(b.price === undefined ? {} : { price: amountOf(b.price, 'price', { positive: true }) }),
  }
}

export function decodeJoin(body: unknown): JoinBody {
  const b = fields(body, 'fl.join body', ['task', 'bond'])
  return { task: bounded(b.task, 'task', 1, Number.MAX_SAFE_INTEGER), bond: amountOf(b.bond, 'bond') }
}

export function decodeUpdate(body: unknown): UpdateBody {
  const b = fields(body, 'fl.update body', ['task', 'round', 'cid', 'digest', 'bytes', 'samples'])
  return {
    task: bounded(b.task, 'task', 1, Number.MAX_SAFE_INTEGER),
    round: bounded(b.round, 'round', 1, MAX_ROUNDS),
    cid: canonicalCid(b.cid, 'cid'),
    digest: digestOf(b.digest, 'digest'),
    // a blob over the limit is refused by the handler ('too-large'), so it is included as failed
    bytes: bounded(b.bytes, 'bytes', 1, Number.MAX_SAFE_INTEGER),
    samples: bounded(b.samples, 'samples', 1, MAX_SAMPLES),
  }
}

export function decodeVote(body: unknown): VoteBody {
  const b = fields(body, 'fl.vote body', ['task', 'round', 'approve', 'aggregate', 'onnx', 'accuracyPpm', 'excluded'])
  if (typeof b.approve !== 'boolean') malformed('approve must be a boolean')
  if (!Array.isArray(b.excluded) || b.excluded.length > MAX_PARTICIPANTS)
    malformed(`excluded must list at most ${MAX_PARTICIPANTS} proposers`)
  const excluded = b.excluded.map((d: unknown, i) => didOf(d, `excluded[${i}]`))
  if (new Set(excluded).size !== excluded.length) malformed('excluded names a proposer twice')
  const aggregate = b.aggregate === undefined ? undefined : modelRefOf(b.aggregate, 'aggregate')
  if (b.approve && aggregate === undefined) malformed('an approving vote names the aggregate it approves')
  const onnx = b.onnx === undefined ? undefined : onnxRefOf(b.onnx)
  if (onnx !== undefined && aggregate === undefined) malformed('onnx is the export of an aggregate: name the aggregate')
  if (onnx !== undefined && onnx.cid === aggregate?.cid) malformed('onnx names the aggregate blob, not its ONNX export')
  return {
    task: bounded(b.task, 'task', 1, Number.MAX_SAFE_INTEGER),
    round: bounded(b.round, 'round', 1, MAX_ROUNDS),
    approve: b.approve,
    ...(aggregate === undefined ? {} : { aggregate }),
    ...(onnx === undefined ? {} : { onnx }),
    accuracyPpm: bounded(b.accuracyPpm, 'accuracyPpm', 0, PPM_MAX),
    excluded,
  }
}
