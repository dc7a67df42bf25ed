/**
 * Jobs, dispatches and receipts: the signed objects of the inference market.
 *
 * A client signs a job (which model, which gateway may spend its deposit, a salted commitment to
 * its inputs, the most it will pay, a deadline); the gateway signs a dispatch naming the one
 * worker it sends the job to; that worker signs a receipt (the job, the dispatch, the hash of its
 * outputs, who, how). All are canonical dag-cbor, signed over `sha256("donghae/<kind>/v1" || bytes)`:
 *
 *   job       { chainId, client, gateway, model (CID), inputsHash (32 B), maxFee, deadline (unix ms), salt (16 B) }
 *   dispatch  { jobId (32 B), worker }                                        signed by job.gateway
 *   receipt   { job (signed), dispatch (64 B signature, or null for an audit run), worker,
 *               outputHash (32 B), fee, ep, runtime, startedAt, finishedAt, computeMicros }
 *
 * `inputsHash` is a commitment, sha256("donghae/inputs/v1" || salt || hashTensorMap(inputs)): the
 * chain sees only commitments, so two jobs with the same inputs cannot be linked from on-chain
 * data (a canary made of a recent client's inputs looks like any other job there).
 *
 * `jobId` = sha256(job bytes without signature); `receiptId` = sha256(receipt bytes without
 * signature). The chain settles each job id once, and only with a receipt by the worker the
 * gateway dispatched it to (src/inference/chain/settle.ts). Audit re-runs are receipts for the
 * same job by another worker, with no dispatch: they can never be settled as payment.
 */
import { decode, encode } from '../core/codec.ts'
import { sha256 } from '../core/hash.ts'
import { concat, toHex, utf8 } from '../core/bytes.ts'
import { InvalidInputError } from '../core/errors.ts'
import { asUint64 } from '../core/uint.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { verifySignature } from '../identity/keys.ts'
import { didFromEd25519PublicKey, ed25519PublicKeyFromDid } from '../identity/did-key.ts'

export const JOB_SIGNING_KIND = 'inference.job'
export const DISPATCH_SIGNING_KIND = 'inference.dispatch'
export const RECEIPT_SIGNING_KIND = 'inference.receipt'
const INPUTS_TAG = utf8('donghae/inputs/v1')
/** Execution providers a receipt may name. */
export const EXECUTION_PROVIDERS = ['cpu', 'coreml', 'cuda', 'webgpu'] as const
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number]

export interface Job {
  chainId: string
  /** did:key of the client who pays. */
  client: string
  /** did:key of the gateway whose deposit from this client pays, and who dispatches the job. */
  gateway: string
  /** CID (string) of the model's ONNX file. */
  model: string
  /** Salted commitment to the inputs: `inputsCommitment(salt, hashTensorMap(inputs))`. */
  inputsHash: Uint8Array
  /** Most the client will pay, in base units. */
  maxFee: bigint
  /** Unix milliseconds after which no worker may start the job. */
  deadline: number
  /** 16 random bytes: two identical requests are two jobs, and their commitments differ. */
  salt: Uint8Array
}

export interface SignedJob extends Job {
  signature: Uint8Array
}

/** Tokens a language-model receipt charges for (prompt and output are priced separately). */
export interface TokenUsage {
  prompt: number
  output: number
}

export interface ReceiptBody {
  job: SignedJob
  /** The gateway's signature over `{ jobId, worker }`; null for an audit or quorum re-run. */
  dispatch: Uint8Array | null
  /** did:key of the worker who ran it. */
  worker: string
  /** sha256 of the canonical encoding of the output tensors. */
  outputHash: Uint8Array
  /** What the worker charges: the model's registered price (<= job.maxFee). */
  fee: bigint
  ep: ExecutionProvider
  /** e.g. "onnxruntime-node/1.30.0". */
  runtime: string
  startedAt: number
  finishedAt: number
  /** Time spent in the ONNX Runtime session, microseconds. */
  computeMicros: number
  /** Language models only: the tokens charged (the fee is computed from them, chain/state.ts `feeFor`). */
  usage?: TokenUsage
}

export interface Receipt extends ReceiptBody {
  signature: Uint8Array
}

function jobFields(job: Job): Record<string, unknown> {
  return {
    chainId: job.chainId,
    client: job.client,
    gateway: job.gateway,
    model: job.model,
    inputsHash: job.inputsHash,
    maxFee: job.maxFee,
    deadline: job.deadline,
    salt: job.salt,
  }
}

/** The signed job as a dag-cbor value (inside receipts and on the wire). */
export function jobValue(job: SignedJob): Record<string, unknown> {
  return { ...jobFields(job), signature: job.signature }
}

export function jobSignBytes(job: Job): Uint8Array {
  return encode(jobFields(job))
}

export function jobId(job: Job): Uint8Array {
  return sha256(jobSignBytes(job))
}

export function jobIdHex(job: Job): string {
  return toHex(jobId(job))
}

/** The commitment a job carries: sha256("donghae/inputs/v1" || salt || tensorsHash). */
export function inputsCommitment(salt: Uint8Array, tensorsHash: Uint8Array): Uint8Array {
  return sha256(concat(INPUTS_TAG, salt, tensorsHash))
}

export function signJob(key: Ed25519KeyPair, job: Omit<Job, 'client'>): SignedJob {
  const unsigned: Job = { ...job, client: didFromEd25519PublicKey(key.publicKey) }
  return { ...unsigned, signature: key.sign(JOB_SIGNING_KIND, jobSignBytes(unsigned)) }
}

function verifyBy(did: string, kind: string, bytes: Uint8Array, signature: Uint8Array): boolean {
  let publicKey: Uint8Array
  try {
    publicKey = ed25519PublicKeyFromDid(did)
  } catch {
    return false
  }
  return verifySignature(publicKey, kind, bytes, signature)
}

/** True when the client's key signed this job. Never throws. */
export function verifyJob(job: SignedJob): boolean {
  return verifyBy(job.client, JOB_SIGNING_KIND, jobSignBytes(job), job.signature)
}

/** The bytes a gateway signs to dispatch job `jobIdBytes` to `worker`. */
export function dispatchSignBytes(jobIdBytes: Uint8Array, worker: string): Uint8Array {
  return encode({ jobId: jobIdBytes, worker })
}

/** The gateway's dispatch of `job` to `worker` (the signature a paid receipt carries). */
export function signDispatch(key: Ed25519KeyPair, job: Job, worker: string): Uint8Array {
  return key.sign(DISPATCH_SIGNING_KIND, dispatchSignBytes(jobId(job), worker))
}

/** True when the receipt carries the job's gateway's dispatch to the receipt's worker. Never throws. */
export function verifyDispatch(r: ReceiptBody): boolean {
  if (r.dispatch === null) return false
  return verifyBy(r.job.gateway, DISPATCH_SIGNING_KIND, dispatchSignBytes(jobId(r.job), r.worker), r.dispatch)
}

function receiptFields(r: ReceiptBody): Record<string, unknown> {
  return {
    job: jobValue(r.job),
    dispatch: r.dispatch,
    worker: r.worker,
    outputHash: r.outputHash,
    fee: r.fee,
    ep: r.ep,
    runtime: r.runtime,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    computeMicros: r.computeMicros,
    // absent for tensor models, so their receipts encode as before
    ...(r.usage === undefined ? {} : { usage: { prompt: r.usage.prompt, output: r.usage.output } }),
  }
}

export function receiptSignBytes(r: ReceiptBody): Uint8Array {
  return encode(receiptFields(r))
}

export function receiptId(r: ReceiptBody): Uint8Array {
  return sha256(receiptSignBytes(r))
}

export function signReceipt(key: Ed25519KeyPair, body: Omit<ReceiptBody, 'worker'>): Receipt {
  const unsigned: ReceiptBody = { ...body, worker: didFromEd25519PublicKey(key.publicKey) }
  return { ...unsigned, signature: key.sign(RECEIPT_SIGNING_KIND, receiptSignBytes(unsigned)) }
}

/** True when the worker signed the receipt and the client signed its job. Never throws. */
export function verifyReceipt(r: Receipt): boolean {
  return verifyWorkerSignature(r) && verifyJob(r.job)
}

/**
 * True when the worker signed the receipt; the job's own signature is not checked (for a caller
 * that holds the job, already verified, and has compared it with the receipt's). Never throws.
 */
export function verifyWorkerSignature(r: Receipt): boolean {
  return verifyBy(r.worker, RECEIPT_SIGNING_KIND, receiptSignBytes(r), r.signature)
}

/** The receipt as a dag-cbor value (for transaction bodies and the wire). */
export function receiptValue(r: Receipt): Record<string, unknown> {
  return { ...receiptFields(r), signature: r.signature }
}

export function encodeReceipt(r: Receipt): Uint8Array {
  return encode(receiptValue(r))
}

const bytesOf = (v: unknown, name: string, length: number): Uint8Array => {
  if (!(v instanceof Uint8Array) || v.length !== length) throw new InvalidInputError(`${name} must be ${length} bytes`)
  return v
}
const stringOf = (v: unknown, name: string, max: number): string => {
  if (typeof v !== 'string' || v.length === 0 || v.length > max)
    throw new InvalidInputError(`${name} must be a string of 1-${max} characters`)
  return v
}
const timeOf = (v: unknown, name: string): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new InvalidInputError(`${name} must be a non-negative integer`)
  return v
}

function exactKeys(raw: unknown, expected: string[], what: string, optional: string[] = []): Record<string, unknown> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || raw instanceof Uint8Array)
    throw new InvalidInputError(`${what} must be a map`)
  const keys = Object.keys(raw).sort()
  const want = [...expected, ...optional.filter((k) => k in raw)].sort()
  if (keys.length !== want.length || keys.some((k, i) => k !== want[i]))
    throw new InvalidInputError(`${what} fields must be exactly ${want.join(', ')}`)
  return raw as Record<string, unknown>
}

/** Types a decoded dag-cbor value as a signed job (shape only; see `verifyJob`). Throws InvalidInputError. */
export function parseSignedJob(raw: unknown): SignedJob {
  const f = exactKeys(
    raw,
    ['chainId', 'client', 'gateway', 'model', 'inputsHash', 'maxFee', 'deadline', 'salt', 'signature'],
    'job',
  )
  return {
    chainId: stringOf(f.chainId, 'job.chainId', 64),
    client: stringOf(f.client, 'job.client', 128),
    gateway: stringOf(f.gateway, 'job.gateway', 128),
    model: stringOf(f.model, 'job.model', 128),
    inputsHash: bytesOf(f.inputsHash, 'job.inputsHash', 32),
    maxFee: asUint64(f.maxFee, 'job.maxFee'),
    deadline: timeOf(f.deadline, 'job.deadline'),
    salt: bytesOf(f.salt, 'job.salt', 16),
    signature: bytesOf(f.signature, 'job.signature', 64),
  }
}

/** Types a decoded dag-cbor value as a receipt (shape only; see `verifyReceipt`). Throws InvalidInputError. */
export function parseReceipt(raw: unknown): Receipt {
  const f = exactKeys(
    raw,
    [
      'job',
      'dispatch',
      'worker',
      'outputHash',
      'fee',
      'ep',
      'runtime',
      'startedAt',
      'finishedAt',
      'computeMicros',
      'signature',
    ],
    'receipt',
    ['usage'],
  )
  if (typeof f.ep !== 'string' || !(EXECUTION_PROVIDERS as readonly string[]).includes(f.ep))
    throw new InvalidInputError(`receipt.ep must be one of ${EXECUTION_PROVIDERS.join(', ')}`)
  const startedAt = timeOf(f.startedAt, 'receipt.startedAt')
  const finishedAt = timeOf(f.finishedAt, 'receipt.finishedAt')
  if (finishedAt < startedAt) throw new InvalidInputError('receipt.finishedAt is before receipt.startedAt')
  return {
    job: parseSignedJob(f.job),
    dispatch: f.dispatch === null ? null : bytesOf(f.dispatch, 'receipt.dispatch', 64),
    worker: stringOf(f.worker, 'receipt.worker', 128),
    outputHash: bytesOf(f.outputHash, 'receipt.outputHash', 32),
    fee: asUint64(f.fee, 'receipt.fee'),
    ep: f.ep as ExecutionProvider,
    runtime: stringOf(f.runtime, 'receipt.runtime', 64),
    startedAt,
    finishedAt,
    computeMicros: timeOf(f.computeMicros, 'receipt.computeMicros'),
    ...(f.usage === undefined ? {} : { usage: usageOf(f.usage) }),
    signature: bytesOf(f.signature, 'receipt.signature', 64),
  }
}

function usageOf(raw: unknown): TokenUsage {
  const u = exactKeys(raw, ['prompt', 'output'], 'receipt.usage')
  return { prompt: timeOf(u.prompt, 'receipt.usage.prompt'), output: timeOf(u.output, 'receipt.usage.output') }
}

export function decodeReceipt(bytes: Uint8Array): Receipt {
  return parseReceipt(decode(bytes))
}

/** JSON form for HTTP (bytes as hex, bigints as decimal strings). */
export interface ReceiptJson {
  id: string
  jobId: string
  job: {
    chainId: string
    client: string
    gateway: string
    model: string
    inputsHash: string
    maxFee: string
    deadline: number
    salt: string
    signature: string
  }
  /** The gateway's dispatch signature, hex; null for an audit re-run. */
  dispatch: string | null
  worker: string
  outputHash: string
  fee: string
  ep: string
  runtime: string
  startedAt: number
  finishedAt: number
  computeMicros: number
  /** Language models: tokens charged. */
  usage?: TokenUsage
  signature: string
}

export function jobToJson(job: SignedJob): ReceiptJson['job'] {
  return {
    chainId: job.chainId,
    client: job.client,
    gateway: job.gateway,
    model: job.model,
    inputsHash: toHex(job.inputsHash),
    maxFee: job.maxFee.toString(),
    deadline: job.deadline,
    salt: toHex(job.salt),
    signature: toHex(job.signature),
  }
}

export function receiptToJson(r: Receipt): ReceiptJson {
  return {
    id: toHex(receiptId(r)),
    jobId: jobIdHex(r.job),
    job: jobToJson(r.job),
    dispatch: r.dispatch === null ? null : toHex(r.dispatch),
    worker: r.worker,
    outputHash: toHex(r.outputHash),
    fee: r.fee.toString(),
    ep: r.ep,
    runtime: r.runtime,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    computeMicros: r.computeMicros,
    ...(r.usage === undefined ? {} : { usage: { ...r.usage } }),
    signature: toHex(r.signature),
  }
}

const hexBytes = (v: unknown, name: string): Uint8Array => {
  if (typeof v !== 'string' || !/^([0-9a-f]{2})*$/.test(v)) throw new InvalidInputError(`${name} must be lowercase hex`)
  return Uint8Array.from(Buffer.from(v, 'hex'))
}

export function jobFromJson(raw: unknown): SignedJob {
  if (raw === null || typeof raw !== 'object') throw new InvalidInputError('job must be an object')
  const j = raw as Record<string, unknown>
  return parseSignedJob({
    chainId: j.chainId,
    client: j.client,
    gateway: j.gateway,
    model: j.model,
    inputsHash: hexBytes(j.inputsHash, 'job.inputsHash'),
    maxFee: typeof j.maxFee === 'string' && /^\d+$/.test(j.maxFee) ? BigInt(j.maxFee) : j.maxFee,
    deadline: j.deadline,
    salt: hexBytes(j.salt, 'job.salt'),
    signature: hexBytes(j.signature, 'job.signature'),
  })
}

/** Parses the JSON form back into a receipt; the `id` and `jobId` fields, if present, must match. */
export function receiptFromJson(raw: unknown): Receipt {
  if (raw === null || typeof raw !== 'object') throw new InvalidInputError('receipt must be an object')
  const r = raw as Record<string, unknown>
  const receipt = parseReceipt({
    job: jobFromJson(r.job),
    dispatch: r.dispatch === null ? null : hexBytes(r.dispatch, 'receipt.dispatch'),
    worker: r.worker,
    outputHash: hexBytes(r.outputHash, 'receipt.outputHash'),
    fee: typeof r.fee === 'string' && /^\d+$/.test(r.fee) ? BigInt(r.fee) : r.fee,
    ep: r.ep,
    runtime: r.runtime,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    computeMicros: r.computeMicros,
    ...(r.usage === undefined ? {} : { usage: r.usage }),
    signature: hexBytes(r.signature, 'receipt.signature'),
  })
  const sigJob = receipt.job
  if (r.id !== undefined && r.id !== toHex(receiptId(receipt)))
    throw new InvalidInputError('receipt.id does not match the receipt')
  if (r.jobId !== undefined && r.jobId !== jobIdHex(sigJob)) throw new InvalidInputError('receipt.jobId does not match')
  return receipt
}
