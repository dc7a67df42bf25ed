// The FL routes (src/api/routes/fl.ts) through the real HTTP server, over the node's FlApi
// (src/node/fl.ts) on a real fl chain module (test kit) and an in-memory blob store: the task
// views, and the blob rules — only blobs the chain names, at their declared size, within the
// limit; unknown tasks and blobs are 404.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createApiServer } from '../src/api/server.ts'
import type { FlTaskDetailJson, FlTaskJson } from '../src/api/fl-api.ts'
import { NodeFl } from '../src/node/fl.ts'
import { encodeModel, flBlobCid, sealUpdate } from '../src/fl/blob.ts'
import { MAX_FL_BLOB_BYTES } from '../src/fl/chain/decode.ts'
import { weightsDigest } from '../src/fl/weights.ts'
import { byDid, createTask, joinAll, tx, world } from '../src/fl/chain/test-kit.ts'
import { actor, makeGenesis } from './helpers/chain.ts'
import { MemoryChain } from './helpers/memory-chain.ts'

test('FL routes: tasks and rounds as JSON; blobs stored only when the chain names them', async () => {
  const w = world()
  const weights = new Float32Array(2_410).fill(0.01)
  const initialBlob = encodeModel({ task: 0, round: 0, weights })
  const id = createTask(w, { initial: { cid: flBlobCid(initialBlob), digest: weightsDigest(weights) } })
  const round = joinAll(w, id)
  const store = new Map<string, Uint8Array>()
  const fl = new NodeFl({
    chain: { state: () => w.state, height: () => w.height },
    files: {
      put: async (bytes) => {
        store.set(flBlobCid(bytes), bytes)
        return flBlobCid(bytes)
      },
      get: async (cid) => store.get(cid),
      fetch: async () => {
        throw new Error('no peer')
      },
    },
    fetchTimeoutMs: 50,
  })
  const validator = actor()
  const app = createApiServer({
    chain: new MemoryChain({ genesis: makeGenesis([validator], []), validators: [validator] }),
    fl,
  })
  try {
    const tasks = await app.inject({ method: 'GET', url: '/v1/fl/tasks' })
    assert.equal(tasks.statusCode, 200)
    const list = (tasks.json() as { tasks: FlTaskJson[] }).tasks
    assert.equal(list.length, 1)
    assert.equal(list[0]?.status, 'running')
    assert.equal(list[0]?.pool, '12000')

    const detail = await app.inject({ method: 'GET', url: `/v1/fl/tasks/${id}` })
    assert.equal(detail.statusCode, 200)
    const d = detail.json() as FlTaskDetailJson
    assert.equal(d.height, w.height)
    assert.equal(d.participants.length, 12)
    assert.equal(d.participants[0]?.bond, '1000')
    assert.deepEqual(d.rounds[0]?.voters, round.voters)
    assert.equal((await app.inject({ method: 'GET', url: '/v1/fl/tasks/99' })).statusCode, 404)
    assert.equal((await app.inject({ method: 'GET', url: '/v1/fl/tasks/x' })).statusCode, 400)

    const post = (body: Uint8Array, type = 'application/octet-stream') =>
      app.inject({ method: 'POST', url: '/v1/fl/blobs', headers: { 'content-type': type }, payload: Buffer.from(body) })
    // the initial model: named by fl.create
    const stored = await post(initialBlob)
    assert.equal(stored.statusCode, 201, stored.body)
    assert.deepEqual(stored.json(), { cid: flBlobCid(initialBlob), bytes: initialBlob.length, kind: 'initial' })
    const got = await app.inject({ method: 'GET', url: `/v1/fl/blobs/${flBlobCid(initialBlob)}` })
    assert.equal(got.statusCode, 200)
    assert.deepEqual(new Uint8Array(got.rawPayload), initialBlob)

    // an update before its transaction: refused; after it: stored
    const proposer = byDid(w, round.proposers[0]!)
    const sealed = sealUpdate({ task: id, round: 1, proposer: proposer.did, voters: round.voters, update: weights })
    const early = await post(sealed.bytes)
    assert.equal(early.statusCode, 403)
    assert.equal((early.json() as { error: { code: string } }).error.code, 'FORBIDDEN')
    tx(w, proposer, 'fl.update', {
      task: id,
      round: 1,
      cid: sealed.cid,
      digest: sealed.digest,
      bytes: sealed.bytes.length,
      samples: 50,
    })
    assert.equal((await post(sealed.bytes)).statusCode, 201)
    const after = (
      await app.inject({ method: 'GET', url: `/v1/fl/tasks/${id}?rounds=current` })
    ).json() as FlTaskDetailJson
    assert.equal(after.rounds.length, 1)
    assert.equal(after.rounds[0]?.updates[0]?.cid, sealed.cid)

    // limits and shapes
    assert.equal((await post(new Uint8Array(MAX_FL_BLOB_BYTES + 1))).statusCode, 413)
    assert.equal((await post(sealed.bytes, 'text/plain')).statusCode, 415)
    const unknown = flBlobCid(new Uint8Array([1, 2, 3]))
    assert.equal((await app.inject({ method: 'GET', url: `/v1/fl/blobs/${unknown}` })).statusCode, 404)
  } finally {
    await app.close()
  }
})
