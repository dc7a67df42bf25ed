// Jobs and receipts (signatures, ids, JSON round trip, tampering), slot adverts and the gateway's
// choice of worker, and the content-addressed blob store.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import { InvalidInputError } from '../core/errors.ts'
import {
  decodeReceipt,
  encodeReceipt,
  jobIdHex,
  receiptFromJson,
  receiptToJson,
  signJob,
  signReceipt,
  verifyJob,
  verifyReceipt,
  verifyWorkerSignature,
  type SignedJob,
} from './job.ts'
import { ADVERT_TTL_MS, WorkerTable, decodeAdvert, signAdvert } from './adverts.ts'
import { BlobStore, blobCid } from './blobs.ts'

const bytes = (n: number): Uint8Array => new Uint8Array(randomBytes(n))
const client = Ed25519KeyPair.generate()
const worker = Ed25519KeyPair.generate()

/** A receipt signed by `worker`; over a fresh job signed by `client` unless `overJob` is given. */
function aReceipt(overJob?: (job: SignedJob) => SignedJob) {
  const signed = signJob(client, {
    chainId: 'test',
    model: 'bafkreihcutuulavvi77jnsjg7a3vqsh5ki7spllhiterurxlnonkseoggu',
    inputsHash: bytes(32),
    maxFee: 10n,
    deadline: 1_800_000_000_000,
    salt: bytes(16),
  })
  const job = overJob === undefined ? signed : overJob(signed)
  return signReceipt(worker, {
    job,
    outputHash: bytes(32),
    fee: 10n,
    ep: 'cpu',
    runtime: 'onnxruntime-node/1.30.0',
    startedAt: 1_700_000_000_000,
    finishedAt: 1_700_000_000_005,
    computeMicros: 4_000,
  })
}

test('receipts: both signatures verify; binary and JSON forms round-trip; any change breaks them', () => {
  const r = aReceipt()
  assert.ok(verifyJob(r.job))
  assert.ok(verifyReceipt(r))
  assert.equal(r.worker, didFromEd25519PublicKey(worker.publicKey))
  assert.deepEqual(decodeReceipt(encodeReceipt(r)), r)
  const json = receiptToJson(r)
  assert.deepEqual(receiptFromJson(JSON.parse(JSON.stringify(json))), r)
  assert.equal(json.jobId, jobIdHex(r.job))
  assert.equal(verifyReceipt({ ...r, fee: 9n }), false, 'fee changed')
  assert.equal(verifyReceipt({ ...r, job: { ...r.job, maxFee: 11n } }), false, 'the job changed under the receipt')
  assert.equal(verifyReceipt({ ...r, worker: r.job.client }), false, 'claimed by another worker')
  // a worker that signs a receipt over a job with a forged client signature
  const overForged = aReceipt((job) => ({ ...job, signature: new Uint8Array(64).fill(7) }))
  assert.equal(verifyWorkerSignature(overForged), true, 'the worker did sign it')
  assert.equal(verifyReceipt(overForged), false, 'but the client never signed that job')
  assert.equal(verifyWorkerSignature({ ...r, fee: 9n }), false)
  assert.throws(() => receiptFromJson({ ...json, id: '00'.repeat(32) }), InvalidInputError, 'id must match')
  assert.throws(() => receiptFromJson({ ...json, ep: 'tpu' }), InvalidInputError)
  assert.throws(() => receiptFromJson({ ...json, finishedAt: json.startedAt - 1 }), InvalidInputError)
  assert.throws(() => decodeReceipt(encodeReceipt(r).subarray(0, 40)))
})

test('adverts: signed by the worker; forged or altered adverts are refused', () => {
  const bytes = signAdvert(worker, {
    chainId: 'donghae-test',
    ep: 'cpu',
    runtime: 'onnxruntime-node/1.30.0',
    models: [{ cid: 'm', mjps: 5_000 }],
    free: 2,
    queue: 0,
    seq: 1,
    time: 1,
  })
  const advert = decodeAdvert(bytes)
  assert.equal(advert.worker, didFromEd25519PublicKey(worker.publicKey))
  const tampered = Uint8Array.from(bytes)
  tampered[tampered.length - 70] = (tampered[tampered.length - 70] ?? 0) ^ 1
  assert.throws(() => decodeAdvert(tampered), InvalidInputError)
  assert.throws(() => decodeAdvert(randomBytes(50)))
})

test('worker table: earliest expected completion among free slots; busy, failed, stale and ineligible workers are skipped', () => {
  let now = 1_000
  const table = new WorkerTable(() => now)
  const base = { ep: 'cpu' as const, runtime: 'r', queue: 0, seq: 1, time: 1 }
  table.update({ ...base, worker: 'fast', models: [{ cid: 'm', mjps: 100_000 }], free: 1 })
  table.update({ ...base, worker: 'slow', models: [{ cid: 'm', mjps: 1_000 }], free: 4 })
  table.update({ ...base, worker: 'other', models: [{ cid: 'x', mjps: 100_000 }], free: 4 })
  const all = () => true
  assert.equal(table.pick('m', new Set(), all)?.worker, 'fast')
  table.assigned('fast') // its only slot is taken
  assert.equal(table.pick('m', new Set(), all)?.worker, 'slow', 'a slow worker still gets work at its own pace')
  table.finished('fast', { ok: true, rttMs: 1 })
  assert.equal(table.pick('m', new Set(['fast']), all)?.worker, 'slow', 'excluded')
  assert.equal(table.pick('m', new Set(), (w) => w !== 'fast')?.worker, 'slow', 'not eligible on chain')
  table.assigned('fast')
  table.finished('fast', { ok: false })
  assert.equal(table.pick('m', new Set(), all)?.worker, 'slow', 'cooling down after a failure')
  now += ADVERT_TTL_MS + 1
  assert.equal(table.pick('m', new Set(), all), undefined, 'stale adverts are ignored')
  assert.deepEqual(table.serving('m'), [])
  table.update({ ...base, seq: 2, time: 2, worker: 'slow', models: [{ cid: 'm', mjps: 1_000 }], free: 0 })
  assert.equal(table.pick('m', new Set(), all), undefined, 'no free slot: the job waits')
})

test('blob store: content-addressed, verified on read; a corrupted file is not served', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-blobs-'))
  try {
    const store = new BlobStore(dir)
    await store.init()
    const bytes = randomBytes(1000)
    const cid = await store.put(bytes)
    assert.equal(cid, blobCid(bytes))
    assert.equal(await store.put(bytes), cid, 'idempotent')
    assert.deepEqual(await store.get(cid), new Uint8Array(bytes))
    assert.deepEqual(await store.list(), [cid])
    const other = blobCid(randomBytes(10))
    await writeFile(join(dir, other), randomBytes(10))
    assert.equal(await new BlobStore(dir).get(other), undefined, 'bytes that do not hash to the name are ignored')
    await assert.rejects(new BlobStore(dir).get('not-a-cid'), InvalidInputError)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
