// The FL routes (src/api/routes/fl.ts) through the real HTTP server, over the node's FlApi
// (src/node/fl.ts) on a real fl chain module (test kit) and an in-memory blob store: the task
// views, and the blob rules — only blobs the chain names, at their declared size, within the
// limit; unknown tasks and blobs are 404. A task with a price: its ONNX exports (stored after
// their aggregate, 409 before) and, once finished, its model in the market with its lineage.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createApiServer } from '../src/api/server.ts'
import type { FlTaskDetailJson, FlTaskJson } from '../src/api/fl-api.ts'
import { NodeFl } from '../src/node/fl.ts'
import { encodeModel, encodeOnnx, flBlobCid, sealUpdate } from '../src/fl/blob.ts'
import { MAX_FL_BLOB_BYTES } from '../src/fl/chain/decode.ts'
import { weightsDigest } from '../src/fl/weights.ts'
import {
  advanceTo,
  byDid,
  createTask,
  joinAll,
  tx,
  uploadAll,
  voteAll,
  voteBody,
  world,
} from '../src/fl/chain/test-kit.ts'
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

test('FL routes: a priced task shows its ONNX exports and, once finished, its model in the market', async () => {
  const w = world()
  const id = createTask(w, { rounds: 1, price: 5 })
  const round = joinAll(w, id)
  uploadAll(w, round)
  const weights = new Float32Array(2_410).fill(0.02)
  const aggregateBlob = encodeModel({ task: id, round: 1, weights })
  const aggregate = { cid: flBlobCid(aggregateBlob), digest: weightsDigest(weights) }
  const exportBytes = encodeOnnx({ task: id, round: 1, widths: [64, 32, 10], inputDivisor: 16, weights })
  const onnx = { cid: flBlobCid(exportBytes), bytes: exportBytes.length }
  voteAll(
    w,
    round,
    round.voters.map((did) => [did, voteBody(round, aggregate, { onnx })]),
  )
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
    const post = (body: Uint8Array) =>
      app.inject({
        method: 'POST',
        url: '/v1/fl/blobs',
        headers: { 'content-type': 'application/octet-stream' },
        payload: Buffer.from(body),
      })
    assert.equal((await post(exportBytes)).statusCode, 409, 'the export waits for its aggregate')
    assert.equal((await post(aggregateBlob)).statusCode, 201)
    const stored = await post(exportBytes)
    assert.equal(stored.statusCode, 201, stored.body)
    assert.deepEqual(stored.json(), { ...onnx, kind: 'onnx' })
    const got = await app.inject({ method: 'GET', url: `/v1/fl/blobs/${onnx.cid}` })
    assert.equal(got.statusCode, 200)
    assert.deepEqual(new Uint8Array(got.rawPayload), exportBytes)
    const running = (await app.inject({ method: 'GET', url: `/v1/fl/tasks/${id}` })).json() as FlTaskDetailJson
    assert.equal(running.task.price, '5')
    assert.equal(running.task.deposit, '1000')
    assert.equal(running.task.model, undefined)
    assert.deepEqual(running.rounds[0]?.votes[0]?.onnx, onnx)

    advanceTo(w, round.voteEnd)
    const done = (await app.inject({ method: 'GET', url: `/v1/fl/tasks/${id}` })).json() as FlTaskDetailJson
    assert.equal(done.task.status, 'finished')
    assert.deepEqual(done.task.onnx, onnx)
    assert.deepEqual(done.rounds[0]?.onnx, onnx)
    const model = done.task.model
    assert.equal(model?.registered, true)
    assert.equal(model?.cid, onnx.cid)
    assert.equal(model?.version, `fl-${id}`)
    assert.equal(model?.lineage?.source, 'fl')
    assert.equal(model?.lineage?.task, String(id))
    assert.equal(model?.lineage?.contributors[0]?.did, w.creator.did)
    const list = (await app.inject({ method: 'GET', url: '/v1/fl/tasks' })).json() as { tasks: FlTaskJson[] }
    assert.equal(list.tasks[0]?.model?.cid, onnx.cid)
  } finally {
    await app.close()
  }
})
