// ArenaParticipant: nodes that train and validate with their own keys, driven by commits, on the
// real state machine: each participant's transactions go into the next block, as a node's own
// transaction queue would put them. Three trainers (the built-in trainer on a small dataset,
// one of them through an external command under the file contract), three validators; the task
// settles with every job done, and saved jobs restore after a restart.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cidOfBytes, RAW_CODE } from '../core/cid.ts'
import { createRng, type Dataset } from '../inference/trainer.ts'
import { readResult, readTask } from './chain/module.ts'
import { actor, block, events, registerBase, tx, world, type Actor, type TxSpec, type World } from './chain/test-kit.ts'
import { encodeValidationSet, validationCommit } from './evaluate.ts'
import { ArenaParticipant, type ArenaJob } from './participant.ts'
import { trainBuiltIn } from './trainer.ts'

function blobs(seed: number, n: number): Dataset {
  const rng = createRng(seed)
  const features = new Float32Array(n * 4)
  const labels = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    const c = rng.int(3)
    labels[i] = c
    for (let j = 0; j < 4; j++) features[i * 4 + j] = (j === c ? 1.5 : 0) + rng.normal() * 0.6
  }
  return { features, labels, featureCount: 4, classCount: 3 }
}

interface Node {
  who: Actor
  p: ArenaParticipant
  saved: ArenaJob[]
}

test('participants train, commit, publish, score, commit and reveal through the chain; the task settles', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'arena-participant-'))
  try {
    const trainers = Array.from({ length: 3 }, (_, i) => actor(`trainers ${i}`))
    const validators = Array.from({ length: 3 }, (_, i) => actor(`validators ${i}`))
    const w: World = world({ funded: [...trainers, ...validators] })
    const data = blobs(1, 300)
    const sets = { A: encodeValidationSet(blobs(2, 90)), B: encodeValidationSet(blobs(3, 90)) }
    const files = new Map<string, Uint8Array>()
    const base = await trainBuiltIn(data, { epochs: 1, seed: 9, hidden: [8] })
    files.set(cidOfBytes(base, RAW_CODE).toString(), base)
    const baseCid = registerBase(w, w.creator, base)
    const created = tx(w, w.creator, 'arena.create', {
      name: 'blobs',
      baseModel: { kind: 'model', cid: baseCid },
      data: { kind: 'local' },
      validationCommitA: validationCommit(sets.A),
      validationCommitB: validationCommit(sets.B),
      submitDeadline: w.height + 4,
      publishDeadline: w.height + 7,
      scoreDeadline: w.height + 10,
      revealDeadline: w.height + 13,
      k1: 2,
      k2: 3,
      pool: 10_000n,
    })
    const task = Number(events(created, 'arena.created')[0]?.attributes.task)
    const queue: TxSpec[] = []
    const node = (who: Actor): Node => {
      const n: Node = { who, saved: [], p: undefined as unknown as ArenaParticipant }
      n.p = new ArenaParticipant({
        did: who.did,
        state: () => w.state,
        submitTx: async (kind, body) => void queue.push([who, kind, body]),
        files: {
          put: async (bytes) => {
            const cid = cidOfBytes(bytes, RAW_CODE).toString()
            files.set(cid, bytes)
            return cid
          },
          get: async (cid) => files.get(cid),
          fetch: async (cid) => {
            const bytes = files.get(cid)
            if (bytes === undefined) throw new Error(`no ${cid}`)
            return bytes
          },
        },
        localData: async () => data,
        workDir: (id) => join(dir, `${who.did.slice(-8)}-${id}`),
        save: async (jobs) => void (n.saved = jobs),
      })
      return n
    }
    const tNodes = trainers.map(node)
    const vNodes = validators.map(node)
    // trainer 2 trains with an external command: a shell script that copies the base weights
    const external = `cp base.onnx weights.onnx && test -f input.json`
    await Promise.all([
      tNodes[0]!.p.train({ task, bond: 500n, epochs: 30, seed: 1 }),
      tNodes[1]!.p.train({ task, bond: 500n, epochs: 5, seed: 2 }),
      tNodes[2]!.p.train({ task, bond: 500n, command: external }),
      ...vNodes.map((v) => v.p.validate({ task, bond: 1_000n, setA: sets.A, setB: sets.B })),
    ])
    await assert.rejects(
      vNodes[0]!.p.validate({ task, bond: 1_000n, setA: sets.B, setB: sets.A }),
      /does not hash/,
      'sets that do not match the commitments are refused',
    )
    const t0 = readTask(w.state, task)!
    while (w.height < t0.revealDeadline) {
      block(w, queue.splice(0))
      for (const n of [...tNodes, ...vNodes]) await n.p.onHeight(w.height)
    }
    const result = readResult(w.state, task)
    assert.ok(result !== undefined, 'settled')
    assert.deepEqual(
      [...tNodes, ...vNodes].map((n) => n.p.jobs()[0]?.stage),
      ['published', 'published', 'published', 'revealed', 'revealed', 'revealed'],
    )
    assert.ok(result.validators.every((v) => v.revealed && v.payout > 0n))
    const copyOfBase = result.submissions.find((s) => s.trainer === trainers[2]!.did)
    assert.equal(copyOfBase?.rank, 3, "the external command's copy of the base model ranks last")
    assert.ok(result.submissions.every((s) => s.status === 'ranked'))
    // a restarted node picks its saved jobs up again
    const again = node(trainers[0]!)
    again.p.restore(tNodes[0]!.saved)
    assert.equal(again.p.jobs()[0]?.stage, 'published')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
