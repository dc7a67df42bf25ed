// The Arena routes (src/api/routes/arena.ts) over a NodeArena (src/node/arena.ts) whose "node"
// is the arena test kit's in-process chain: task list and detail with the leaderboard after
// settlement, 404 for an unknown task, the operator routes' token, and the node validating
// through its own transactions (queued into the next block, as the node's own-tx queue does).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify'
import { cidOfBytes, RAW_CODE } from '../src/core/cid.ts'
import { NotFoundError } from '../src/api/errors.ts'
import { generateApiToken, setOperatorToken } from '../src/api/auth.ts'
import { arenaRoutes } from '../src/api/routes/arena.ts'
import { NodeArena } from '../src/node/arena.ts'
import { encodeValidationSet, validationCommit } from '../src/arena/evaluate.ts'
import { prepareSubmission, publishTxBody, submitTxBody, trainBuiltIn } from '../src/arena/trainer.ts'
import { readTask } from '../src/arena/chain/module.ts'
import {
  actor,
  advanceTo,
  block,
  events,
  registerBase,
  tx,
  world,
  type Actor,
  type TxSpec,
} from '../src/arena/chain/test-kit.ts'
import { createRng, type Dataset } from '../src/inference/trainer.ts'

const TOKEN = generateApiToken()
const auth = { authorization: `Bearer ${TOKEN}` }

function blobs(seed: number, n: number): Dataset {
  const rng = createRng(seed)
  const features = new Float32Array(n * 64)
  const labels = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    const c = rng.int(10)
    labels[i] = c
    for (let j = 0; j < 64; j++) features[i * 64 + j] = (j % 10 === c ? 8 : 0) + rng.next() * 4
  }
  return { features, labels, featureCount: 64, classCount: 10 }
}

async function server(arena: NodeArena): Promise<FastifyInstance> {
  const app = Fastify()
  setOperatorToken(app, TOKEN)
  app.setErrorHandler((err: FastifyError, _req, reply) => {
    const status = err instanceof NotFoundError ? 404 : err.name === 'UnauthorizedError' ? 401 : (err.statusCode ?? 500)
    return reply.code(status).send({ error: { code: err.name, message: err.message } })
  })
  await app.register(arenaRoutes, { arena })
  return app
}

test('arena routes: tasks, a settled task with its leaderboard, the operator joining as validator', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'arena-api-'))
  try {
    const node: Actor = actor('node')
    const others = Array.from({ length: 3 }, (_, i) => actor(`others ${i}`))
    const w = world({ funded: [node, ...others] })
    const sets = { A: encodeValidationSet(blobs(2, 60)), B: encodeValidationSet(blobs(3, 60)) }
    await writeFile(join(dir, 'a.bin'), sets.A)
    await writeFile(join(dir, 'b.bin'), sets.B)
    const base = await trainBuiltIn(blobs(1, 200), { epochs: 1, seed: 1, hidden: [8] })
    const files = new Map([[cidOfBytes(base, RAW_CODE).toString(), base]])
    const baseCid = registerBase(w, w.creator, base)
    const created = tx(w, w.creator, 'arena.create', {
      name: 'api-task',
      baseModel: { kind: 'model', cid: baseCid },
      data: { kind: 'local' },
      validationCommitA: validationCommit(sets.A),
      validationCommitB: validationCommit(sets.B),
      submitDeadline: w.height + 4,
      publishDeadline: w.height + 6,
      scoreDeadline: w.height + 8,
      revealDeadline: w.height + 10,
      k1: 2,
      k2: 2,
      pool: 5_000n,
    })
    const task = Number(events(created, 'arena.created')[0]?.attributes.task)
    const queue: TxSpec[] = []
    const listeners = new Set<(b: { header: { height: number } }) => void>()
    const arena = new NodeArena({
      node: {
        did: node.did,
        app: {
          get state() {
            return w.state
          },
          head: {
            get height() {
              return w.height
            },
          },
        },
        submitOwnTx: async (kind, body) => void queue.push([node, kind, body]),
        onCommit: (listener) => {
          listeners.add(listener)
          return () => listeners.delete(listener)
        },
      },
      files: {
        put: async (bytes) => {
          const cid = cidOfBytes(bytes, RAW_CODE).toString()
          files.set(cid, bytes)
          return cid
        },
        get: async (cid) => files.get(cid),
        fetch: async (cid) => files.get(cid) ?? new Uint8Array(),
      },
      peers: () => [],
      dataDir: dir,
    })
    await arena.start()
    assert.equal(listeners.size, 1, 'it follows commits')
    const app = await server(arena)

    let res = await app.inject({ method: 'GET', url: '/v1/arena/tasks' })
    assert.equal(res.statusCode, 200)
    const list = res.json() as { tasks: Array<{ id: number; phase: string; pool: string }> }
    assert.deepEqual(
      list.tasks.map((t) => [t.id, t.phase, t.pool]),
      [[task, 'submitting', '5000']],
    )
    assert.equal((await app.inject({ method: 'GET', url: '/v1/arena/tasks/99' })).statusCode, 404)
    assert.equal((await app.inject({ method: 'GET', url: '/v1/operator/arena/jobs' })).statusCode, 401)

    // the node validates (sets from its disk) ...
    res = await app.inject({
      method: 'POST',
      url: '/v1/operator/arena/validate',
      headers: auth,
      payload: { task, bond: '1000', setA: join(dir, 'a.bin'), setB: join(dir, 'b.bin') },
    })
    assert.equal(res.statusCode, 200, res.body)
    res = await app.inject({
      method: 'POST',
      url: '/v1/operator/arena/validate',
      headers: auth,
      payload: { task, bond: '1000', setA: join(dir, 'b.bin'), setB: join(dir, 'a.bin') },
    })
    assert.equal(res.statusCode, 400, 'sets that do not open the commitments')
    // ... two others train and a third validates by hand
    const trainers = others.slice(0, 2)
    const weightsOf = await Promise.all(
      trainers.map((_, i) => trainBuiltIn(blobs(1, 200), { epochs: 3 + 5 * i, seed: i + 2, hidden: [8] })),
    )
    const prepared = await Promise.all(weightsOf.map((b, i) => prepareSubmission(b, trainers[i]!.did)))
    for (const p of prepared) files.set(p.cid, p.bytes)
    block(w, [
      ...queue.splice(0),
      ...trainers.map((o): TxSpec => [o, 'arena.bond', { task, role: 'trainer', amount: 500n }]),
    ])
    block(
      w,
      trainers.map((o, i): TxSpec => [o, 'arena.submit', submitTxBody(task, prepared[i]!)]),
    )
    const t0 = readTask(w.state, task)!
    while (w.height < t0.revealDeadline) {
      const txs = queue.splice(0)
      if (w.height === t0.submitDeadline)
        txs.push(...trainers.map((o, i): TxSpec => [o, 'arena.publish', publishTxBody(task, prepared[i]!)]))
      block(w, txs)
      await arena.participant.onHeight(w.height) // what the commit listener starts
    }
    advanceTo(w, t0.revealDeadline)

    res = await app.inject({ method: 'GET', url: '/v1/operator/arena/jobs', headers: auth })
    assert.deepEqual(
      (res.json() as { jobs: Array<{ stage: string }> }).jobs.map((j) => j.stage),
      ['revealed'],
    )
    res = await app.inject({ method: 'GET', url: `/v1/arena/tasks/${task}` })
    assert.equal(res.statusCode, 200)
    const detail = res.json() as {
      phase: string
      result: {
        leaderboard: Array<{ rank: number; payout: string }>
        validators: Array<{ did: string; payout: string }>
      }
    }
    assert.equal(detail.phase, 'settled')
    assert.deepEqual(
      detail.result.leaderboard.map((r) => r.rank),
      [1, 2],
    )
    assert.ok(BigInt(detail.result.validators[0]!.payout) > 0n)
    assert.equal(detail.result.validators[0]!.did, node.did)
    arena.stop()
    assert.equal(listeners.size, 0)
    await app.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
