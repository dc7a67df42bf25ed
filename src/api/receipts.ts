/**
 * Checks an inference receipt in its JSON form (as `POST /v1/infer` answers it) with WebCrypto,
 * so it runs in browsers and in Node alike. It rebuilds the same canonical dag-cbor bytes as
 * src/inference/job.ts (`jobSignBytes`, `receiptSignBytes`), checks the ids, and verifies both
 * Ed25519 signatures over `sha256("donghae/<kind>/v1" || bytes)` (core/signing.ts): the
 * worker's on the receipt and the client's on the job. job.ts itself cannot be used here: it
 * reaches node:crypto through core/hash.ts and identity/keys.ts. test/api-client.test.ts checks
 * that both verifiers agree on real and tampered receipts.
 *
 * Needs WebCrypto Ed25519: Node >= 22, Chromium >= 137, Firefox >= 129, Safari >= 17. Browsers
 * offer WebCrypto only on secure origins (https, or http://127.0.0.1 and localhost).
 */
import * as dagCbor from '@ipld/dag-cbor'
import { base58btc } from 'multiformats/bases/base58'
import type { ReceiptJson } from '../inference/job.ts'

export type ReceiptCheck = { valid: true } | { valid: false; reason: string }

const RECEIPT_KIND = 'inference.receipt'
const JOB_KIND = 'inference.job'
const DISPATCH_KIND = 'inference.dispatch'
const ED25519_MULTICODEC = [0xed, 0x01]

/** The environment cannot check Ed25519 signatures (old browser, or an insecure origin). */
export class ReceiptCheckUnsupportedError extends Error {
  override name = 'ReceiptCheckUnsupportedError'
}

class Malformed extends Error {}

function hexBytes(value: unknown, field: string): Uint8Array {
  if (typeof value !== 'string' || !/^([0-9a-f]{2})*$/.test(value)) throw new Malformed(`${field} is not hex`)
  const out = new Uint8Array(value.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(value.slice(2 * i, 2 * i + 2), 16)
  return out
}

function toHex(bytes: Uint8Array): string {
  let out = ''
  for (const b of bytes) out += b.toString(16).padStart(2, '0')
  return out
}

function amount(value: unknown, field: string): bigint {
  if (typeof value !== 'string' || !/^(0|[1-9][0-9]*)$/.test(value)) throw new Malformed(`${field} is not an amount`)
  return BigInt(value)
}

function integer(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw new Malformed(`${field} is not a non-negative integer`)
  return value
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new Malformed(`${field} is missing`)
  return value
}

/** The raw Ed25519 public key of an Ed25519 did:key. */
export function ed25519KeyFromDid(did: string): Uint8Array {
  if (!did.startsWith('did:key:z')) throw new Malformed(`${did} is not a did:key`)
  let bytes: Uint8Array
  try {
    bytes = base58btc.decode(did.slice('did:key:'.length))
  } catch {
    throw new Malformed(`${did} is not base58btc`)
  }
  if (bytes.length !== 34 || bytes[0] !== ED25519_MULTICODEC[0] || bytes[1] !== ED25519_MULTICODEC[1])
    throw new Malformed(`${did} is not an Ed25519 did:key`)
  return bytes.subarray(2)
}

type Subtle = typeof globalThis.crypto.subtle
type Key = Awaited<ReturnType<Subtle['importKey']>>

function subtle(): Subtle {
  const s = globalThis.crypto?.subtle
  if (s === undefined)
    throw new ReceiptCheckUnsupportedError(
      'WebCrypto is not available here (browsers offer it only on https or localhost)',
    )
  return s
}

const bytesView = (b: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(b)

async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  let length = 0
  for (const p of parts) length += p.length
  const all = new Uint8Array(length)
  let offset = 0
  for (const p of parts) {
    all.set(p, offset)
    offset += p.length
  }
  return new Uint8Array(await subtle().digest('SHA-256', all))
}

/** Ed25519 over sha256("donghae/<kind>/v1" || payload), as core/signing.ts signs. */
async function verifySigned(did: string, kind: string, payload: Uint8Array, signature: Uint8Array): Promise<boolean> {
  if (signature.length !== 64) return false
  const digest = await sha256(new TextEncoder().encode(`donghae/${kind}/v1`), payload)
  let key: Key
  try {
    key = await subtle().importKey('raw', bytesView(ed25519KeyFromDid(did)), { name: 'Ed25519' }, false, ['verify'])
  } catch (err) {
    if (err instanceof Malformed) throw err
    throw new ReceiptCheckUnsupportedError(`this environment cannot check Ed25519 signatures: ${String(err)}`)
  }
  return subtle().verify({ name: 'Ed25519' }, key, bytesView(signature), bytesView(digest))
}

function signedValues(json: ReceiptJson): {
  job: Record<string, unknown>
  jobSignature: Uint8Array
  receipt: Record<string, unknown> & { dispatch: Uint8Array | null }
  signature: Uint8Array
} {
  const j = json.job
  const job = {
    chainId: text(j.chainId, 'job.chainId'),
    client: text(j.client, 'job.client'),
    gateway: text(j.gateway, 'job.gateway'),
    model: text(j.model, 'job.model'),
    inputsHash: hexBytes(j.inputsHash, 'job.inputsHash'),
    maxFee: amount(j.maxFee, 'job.maxFee'),
    deadline: integer(j.deadline, 'job.deadline'),
    salt: hexBytes(j.salt, 'job.salt'),
  }
  const jobSignature = hexBytes(j.signature, 'job.signature')
  const receipt = {
    job: { ...job, signature: jobSignature },
    dispatch: json.dispatch === null ? null : hexBytes(json.dispatch, 'dispatch'),
    worker: text(json.worker, 'worker'),
    outputHash: hexBytes(json.outputHash, 'outputHash'),
    fee: amount(json.fee, 'fee'),
    ep: text(json.ep, 'ep'),
    runtime: text(json.runtime, 'runtime'),
    startedAt: integer(json.startedAt, 'startedAt'),
    finishedAt: integer(json.finishedAt, 'finishedAt'),
    computeMicros: integer(json.computeMicros, 'computeMicros'),
    // language models: the tokens charged, signed with the rest (absent on other receipts)
    ...(json.usage === undefined || json.usage === null
      ? {}
      : {
          usage: {
            prompt: integer((json.usage as { prompt?: unknown }).prompt, 'usage.prompt'),
            output: integer((json.usage as { output?: unknown }).output, 'usage.output'),
          },
        }),
  }
  return { job, jobSignature, receipt, signature: hexBytes(json.signature, 'signature') }
}

/**
 * Checks a receipt's ids, the worker's signature and the client's signature on its job.
 * Resolves `{ valid: false, reason }` for a receipt that does not check out; throws
 * ReceiptCheckUnsupportedError where WebCrypto Ed25519 is missing.
 */
export async function verifyReceiptJson(json: ReceiptJson): Promise<ReceiptCheck> {
  let values
  try {
    values = signedValues(json)
  } catch (err) {
    if (err instanceof Malformed) return { valid: false, reason: `malformed receipt: ${err.message}` }
    throw err
  }
  const jobBytes = dagCbor.encode(values.job)
  const receiptBytes = dagCbor.encode(values.receipt)
  if (json.jobId !== undefined && json.jobId !== toHex(await sha256(jobBytes)))
    return { valid: false, reason: 'jobId does not match the job' }
  if (json.id !== undefined && json.id !== toHex(await sha256(receiptBytes)))
    return { valid: false, reason: 'id does not match the receipt' }
  try {
    if (!(await verifySigned(json.worker, RECEIPT_KIND, receiptBytes, values.signature)))
      return { valid: false, reason: "the worker's signature does not verify" }
    if (!(await verifySigned(json.job.client, JOB_KIND, jobBytes, values.jobSignature)))
      return { valid: false, reason: "the client's signature on the job does not verify" }
    const dispatch = values.receipt.dispatch
    if (dispatch !== null) {
      const dispatchBytes = dagCbor.encode({ jobId: await sha256(jobBytes), worker: json.worker })
      if (!(await verifySigned(json.job.gateway, DISPATCH_KIND, dispatchBytes, dispatch)))
        return { valid: false, reason: "the gateway's dispatch to this worker does not verify" }
    }
  } catch (err) {
    if (err instanceof Malformed) return { valid: false, reason: `malformed receipt: ${err.message}` }
    throw err
  }
  return { valid: true }
}
