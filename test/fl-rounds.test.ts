// FL Alliance rounds in one process (issue 15, part 3): the real fl chain module (bank, staking,
// fl through a real state machine, signed transactions), the node's FlApi (src/node/fl.ts) over
// that state and an in-memory blob store, and twelve real participants (src/fl/service.ts) each
// holding one non-IID shard of the digits federation; two of them sign-flip. Time is virtual: a
// block is made whenever every participant is waiting (for its transaction or its next poll), so
// the run is the same on any machine. The seed (DONGHAE_TEST_SEED) derives every key, hence the
// roles of every round; it is printed so a failure can be replayed.
//
// Checked: every round passes with multi-Krum, the global model ends better than it started, the
// attackers' updates are excluded and their bond slashed, no honest participant is slashed, the
// pool is never overdrawn, and a node refuses blobs the chain does not name. Into the market: the
// task has a price, so its global model's ONNX export (which every voter computes alike) is
// registered with its lineage, and the inference runtime serves it as the registry describes it,
// with the global model's answers.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readDigitsDataset } from '../src/inference/demo-models.ts'
import { mlpTrainer } from '../src/inference/trainer.ts'
import { balanceOf } from '../src/bank/bank.ts'
import { consensusModel, digitsFederation, mlpTemplate } from '../src/fl/round.ts'
import { encodeModel, flBlobCid, openingKey } from '../src/fl/blob.ts'
import { flattenMlp, unflattenMlp, weightsDigest } from '../src/fl/weights.ts'
import { FlParticipant, type RoundReport } from '../src/fl/service.ts'
import { escrowBalance, listParticipants, listRounds, readTask } from '../src/fl/chain/state.ts'
import { blockResults, createTask, world, type Actor, type TxSpec, type World } from '../src/fl/chain/test-kit.ts'
import { NodeFl } from '../src/node/fl.ts'
import { FlBlobRefusedError, participantView } from '../src/api/fl-api.ts'
import { decodeModel } from '../src/fl/blob.ts'
import { testSeed } from './helpers/random.ts'
import { modelByCid } from '../src/inference/chain/state.ts'
import { modelLineage } from '../src/inference/chain/lineage.ts'
import { OnnxRuntime } from '../src/inference/runtime.ts'
import { createTensor } from '../src/inference/tensor.ts'

interface Pending {
  spec: TxSpec
  resolve(result: { hash: string; height: number; ok: boolean; reason?: string }): void
}

/** Blocks on demand: one is made when every participant waits (for a block or its next poll). */
class VirtualChain {
  readonly w: World
  busy = 0
  #pending: Pending[] = []
  #sleepers: Array<() => void> = []

  constructor(w: World) {
    this.w = w
  }

  sleep(): Promise<void> {
    this.busy--
    return new Promise((resolve) =>
      this.#sleepers.push(() => {
        this.busy++
        resolve()
      }),
    )
  }

  submit(
    who: Actor,
    kind: string,
    body: unknown,
  ): Promise<{ hash: string; height: number; ok: boolean; reason?: string }> {
    this.busy--
    return new Promise((resolve) =>
      this.#pending.push({
        spec: [who, kind, body],
        resolve: (r) => {
          this.busy++
          resolve(r)
        },
      }),
    )
  }

  /** Makes blocks until `done()`; returns the number made. */
  async run(done: () => boolean, maxBlocks: number): Promise<number> {
    let made = 0
    while (!done()) {
      // let every participant reach its next wait
      while (this.busy > 0) await new Promise((resolve) => setImmediate(resolve))
      if (done()) break
      assert.ok(made++ < maxBlocks, `no end after ${maxBlocks} blocks`)
      const pending = this.#pending.splice(0)
      const sleepers = this.#sleepers.splice(0)
      const { results } = blockResults(
        this.w,
        pending.map((p) => p.spec),
      )
      pending.forEach((p, i) => {
        const r = results[i]
        p.resolve({
          hash: `tx${this.w.height}/${i}`,
          height: this.w.height,
          ok: r?.ok === true,
          ...(r?.ok === false ? { reason: r.error.reason } : {}),
        })
      })
      for (const wake of sleepers) wake()
    }
    return made
  }
}

test('FL rounds in one process: twelve participants, multi-Krum, two sign-flippers excluded and slashed', async (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (DONGHAE_TEST_SEED=${seed} replays it)`)
  const federation = digitsFederation(await readDigitsDataset(), { clients: 12 })
  const start = await consensusModel(federation.public)
  const startAccuracy = mlpTrainer.evaluate(start, federation.test).accuracy
  const weights = flattenMlp(start)
  const blob = encodeModel({ task: 0, round: 0, weights })
  const initial = { cid: flBlobCid(blob), digest: weightsDigest(weights) }

  const w = world({ seed })
  const chain = new VirtualChain(w)
  const store = new Map<string, Uint8Array>()
  const node = new NodeFl({
    chain: { state: () => w.state, height: () => w.height },
    files: {
      put: async (bytes) => {
        store.set(flBlobCid(bytes), bytes)
        return flBlobCid(bytes)
      },
      get: async (cid) => store.get(cid),
      fetch: async (cid) => {
        const bytes = store.get(cid)
        if (bytes === undefined) throw new Error(`no blob ${cid}`)
        return bytes
      },
    },
  })
  await assert.rejects(node.putBlob(blob), FlBlobRefusedError, 'no task names it yet')
  const rounds = 6
  const id = createTask(w, {
    initial,
    rule: 'multi-krum',
    f: 3,
    rounds,
    uploadBlocks: 3,
    voteBlocks: 3,
    pool: 120_000,
    price: 5,
  })
  assert.equal((await node.putBlob(blob)).kind, 'initial')
  blockResults(
    w,
    w.clients.map((c): TxSpec => [c, 'fl.join', { task: id, bond: 1_000n }]),
  )

  const attackers = new Set(w.clients.slice(0, 2).map((c) => c.did))
  const reports = new Map<string, RoundReport[]>()
  const controller = new AbortController()
  const runs = w.clients.map((client, i) => {
    chain.busy++
    const participant = new FlParticipant(
      {
        task: id,
        did: client.did,
        openingKey: openingKey(client.key, client.did),
        shard: federation.shards[i]!,
        behaviour: attackers.has(client.did) ? 'sign-flip' : 'honest',
        onRound: (r) => reports.set(client.did, [...(reports.get(client.did) ?? []), r]),
      },
      {
        task: async (taskId) => {
          const detail = node.task(taskId, { rounds: 'current' })
          return detail === undefined ? undefined : participantView(detail, client.did)
        },
        submit: (kind, body) => chain.submit(client, `fl.${kind}`, body),
        putBlob: async (bytes) => void (await node.putBlob(bytes)),
        getBlob: (cid) => node.getBlob(cid),
        sleep: () => chain.sleep(),
        now: () => w.height * 1_000,
      },
    )
    return participant.run(controller.signal).finally(() => chain.busy--)
  })
  const finished = (): boolean => readTask(w.state, id)?.status === 'finished'
  const blocks = await chain.run(finished, 200)
  const summaries = await Promise.all(runs)
  t.diagnostic(`${blocks} blocks for ${rounds} rounds`)
  assert.ok(summaries.every((s) => s.status === 'finished'))

  const task = readTask(w.state, id)!
  const history = listRounds(w.state, task)
  if (process.env.FL_DEBUG !== undefined)
    for (const r of [...reports.values()].flat().filter((x) => x.role === 'voter')) t.diagnostic(JSON.stringify(r))
  assert.deepEqual(
    history.map((r) => r.status),
    Array(rounds).fill('passed'),
    JSON.stringify(history.map((r) => ({ round: r.round, votes: r.votes, majority: r.majority }))),
  )
  const final = decodeModel(store.get(task.global.cid)!, { length: weights.length, digest: task.global.digest })
  const finalAccuracy = mlpTrainer.evaluate(
    unflattenMlp(final, mlpTemplate([64, 32, 10], 16)),
    federation.test,
  ).accuracy
  t.diagnostic(
    `test accuracy: start ${(startAccuracy * 100).toFixed(2)}%, after ${rounds} rounds ${(finalAccuracy * 100).toFixed(2)}%; ` +
      `voters' accuracy per round ${history.map((r) => r.accuracyPpm).join(', ')} ppm`,
  )
  assert.ok(finalAccuracy > startAccuracy, 'the federation improved the consensus model')

  const participants = listParticipants(w.state, id)
  const attackerRecords = participants.filter((p) => attackers.has(p.did))
  const honest = participants.filter((p) => !attackers.has(p.did))
  const proposedRounds = (did: string): number => history.filter((r) => r.proposers.includes(did)).length
  t.diagnostic(
    `attackers: ${attackerRecords.map((p) => `proposed ${proposedRounds(p.did)}, excluded ${p.excluded}, slashed ${p.slashed}`).join('; ')}`,
  )
  for (const p of attackerRecords) {
    if (proposedRounds(p.did) === 0) continue
    assert.ok(p.excluded >= 1, `attacker ${p.did} was excluded at least once`)
    assert.ok(p.slashed > 0n, `attacker ${p.did} was slashed`)
    assert.equal(p.returned, 1_000n - p.slashed, 'what is left of its bond came back')
  }
  for (const p of honest) assert.equal(p.slashed, 0n, `honest ${p.did} was not slashed`)
  assert.ok(task.paid <= 120_000n)
  assert.equal(escrowBalance(w.state), 0n, 'pool and bonds all settled')
  assert.equal(balanceOf(w.state, w.creator.did) >= 1_000_000n - 120_000n - task.deposit - 1n, true)

  // into the market: every round's majority agreed on one ONNX export too
  assert.ok(history.every((r) => r.onnx !== undefined && r.majority === 3))
  assert.equal(task.model?.registered, true, JSON.stringify(task.model))
  const onnxCid = task.onnx!.cid
  assert.equal(task.model?.cid, onnxCid)
  const record = modelByCid(w.state, onnxCid)!
  assert.equal(record.name, 'digits')
  assert.equal(record.owner, w.creator.did)
  const lineage = modelLineage(w.state, onnxCid)!
  assert.equal(lineage.source, 'fl')
  assert.equal(lineage.round, rounds)
  assert.equal(lineage.parent, initial.cid)
  assert.equal(lineage.contributors[0]?.did, w.creator.did)
  assert.ok(
    lineage.contributors.every((c) => c.role === 'creator' || participants.some((p) => p.did === c.did && p.paid > 0n)),
  )
  const exported = store.get(onnxCid)
  assert.ok(exported !== undefined, 'the voters stored the export on the node')
  assert.equal(exported.length, record.size)
  const rt = new OnnxRuntime({ executionProvider: 'cpu' })
  try {
    await rt.load(onnxCid, exported)
    assert.deepEqual(rt.model(onnxCid)?.inputs, record.inputs)
    assert.deepEqual(rt.model(onnxCid)?.outputs, record.outputs)
    const rows = federation.test.labels.length
    const { outputs } = await rt.run(onnxCid, {
      input: createTensor('float32', [rows, 64], federation.test.features),
    })
    const served = outputs.probabilities!.data as Float32Array
    const expected = mlpTrainer.predict(unflattenMlp(final, mlpTemplate([64, 32, 10], 16)), federation.test.features)
    served.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-5, `output ${i}: ${v} vs ${expected[i]}`))
  } finally {
    await rt.close()
  }
  // every voter's report names the attackers it excluded
  const voterReports = [...reports.values()].flat().filter((r) => r.role === 'voter')
  assert.ok(voterReports.length >= rounds * 3 - 1)
  assert.ok(voterReports.every((r) => (r.excluded ?? []).every((did) => attackers.has(did))))
})
