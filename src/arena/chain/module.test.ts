// The arena chain module against the real state machine (bank, staking, inference, experts,
// arena): task creation and its governed policy, bonds and roles, commit-then-publish of weights,
// the draw, commit-reveal of scores, settlement (pay, slashes, refunds, escrow) and the winner's
// registration with lineage. The attacks (lazy validators, copied weights and commitments,
// sybils) are in test/attacks/arena.test.ts; the trained demonstration in test/arena-task.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { utf8 } from '../../core/bytes.ts'
import { sha256 } from '../../core/hash.ts'
import { balanceOf, totalSupply } from '../../bank/bank.ts'
import { writeGoverned } from '../../governance/params.ts'
import { modelByName } from '../../inference/chain/state.ts'
import { modelLineage } from '../../inference/chain/lineage.ts'
import { GOV_MAX_TASKS_OPEN, GOV_MIN_REWARD_POOL } from '../constants.ts'
import { escrowBalance, readDraw, readResult, readTask } from './module.ts'
import {
  BALANCE,
  actor,
  advanceTo,
  block,
  commitBody,
  createBody,
  events,
  publishBody,
  refusedTx,
  registerBase,
  revealBody,
  scoresFor,
  submitBody,
  tx,
  weights,
  world,
  type Actor,
  type TxSpec,
  type World,
} from './test-kit.ts'

const SALT = new Uint8Array(32).fill(7)

interface Cast {
  w: World
  base: string
  trainers: Actor[]
  validators: Actor[]
}

function cast(trainers = 3, validators = 3): Cast {
  const t = Array.from({ length: trainers }, (_, i) => actor(`t ${i}`))
  const v = Array.from({ length: validators }, (_, i) => actor(`v ${i}`))
  const w = world({ funded: [...t, ...v] })
  const base = registerBase(w, w.creator)
  return { w, base, trainers: t, validators: v }
}

function createTask(c: Cast, overrides: Record<string, unknown> = {}, gaps?: [number, number, number, number]): number {
  const ev = tx(c.w, c.w.creator, 'arena.create', createBody(c.w, c.base, overrides, gaps))
  const created = events(ev, 'arena.created')[0]
  assert.ok(created, JSON.stringify(ev))
  return Number(created.attributes.task)
}

/** Bonds everyone, commits and publishes `files[i]` for trainer i; returns at the draw. */
function throughDraw(c: Cast, task: number, files: Uint8Array[]): void {
  const wts = files.map((b, i) => weights(b, new Uint8Array(32).fill(i + 1)))
  block(c.w, [
    ...c.trainers.map((t): TxSpec => [t, 'arena.bond', { task, role: 'trainer', amount: 1_000n }]),
    ...c.validators.map((v): TxSpec => [v, 'arena.bond', { task, role: 'validator', amount: 2_000n }]),
  ])
  block(
    c.w,
    c.trainers.map((t, i): TxSpec => [t, 'arena.submit', submitBody(task, t, wts[i]!)]),
  )
  const t0 = readTask(c.w.state, task)!
  advanceTo(c.w, t0.submitDeadline)
  block(
    c.w,
    c.trainers.map((t, i): TxSpec => [t, 'arena.publish', publishBody(task, wts[i]!)]),
  )
  advanceTo(c.w, t0.publishDeadline + 1)
}

/** Every validator commits `score` then reveals it; runs to settlement; returns the settle block's events. */
function scoreAndSettle(
  c: Cast,
  task: number,
  score: (v: number, s: number, set: 'A' | 'B') => number,
  reveal = c.validators,
) {
  const t0 = readTask(c.w.state, task)!
  const scores = c.validators.map((v, i) => scoresFor(c.w, task, v, (s, set) => score(i, s, set)))
  block(
    c.w,
    c.validators.map((v, i): TxSpec => [v, 'arena.commitScores', commitBody(task, v, scores[i]!, SALT)]),
  )
  advanceTo(c.w, t0.scoreDeadline)
  block(
    c.w,
    reveal.map((v): TxSpec => [v, 'arena.revealScores', revealBody(task, scores[c.validators.indexOf(v)]!, SALT)]),
  )
  const before = c.w.height
  const ev = advanceTo(c.w, t0.revealDeadline)
  assert.ok(c.w.height > before)
  return ev
}

const QUALITY = [900_000, 800_000, 700_000]

test('create escrows the pool and the model deposit; governed minimum pool and open-task cap apply', () => {
  const c = cast()
  const before = balanceOf(c.w.state, c.w.creator.did)
  const id = createTask(c, { price: 3n })
  assert.equal(id, 1)
  assert.equal(balanceOf(c.w.state, c.w.creator.did), before - 1n - 100_000n - 1_000n)
  assert.equal(escrowBalance(c.w.state), 101_000n)
  assert.equal(readTask(c.w.state, id)?.status, 'open')

  writeGoverned(c.w.state, GOV_MIN_REWARD_POOL, 200_000n)
  refusedTx(c.w, c.w.creator, 'arena.create', createBody(c.w, c.base), 'pool-too-small')
  writeGoverned(c.w.state, GOV_MIN_REWARD_POOL, 1n)
  writeGoverned(c.w.state, GOV_MAX_TASKS_OPEN, 1n)
  refusedTx(c.w, c.w.creator, 'arena.create', createBody(c.w, c.base), 'too-many-tasks')
  writeGoverned(c.w.state, GOV_MAX_TASKS_OPEN, 10n)
  createTask(c)
})

test('create refuses bad deadlines, k, base models, prices and names', () => {
  const c = cast()
  const w = c.w
  refusedTx(w, w.creator, 'arena.create', createBody(w, c.base, { publishDeadline: 1 }), 'malformed')
  refusedTx(w, w.creator, 'arena.create', createBody(w, c.base, {}, [0, 3, 3, 3]), 'bad-deadline')
  refusedTx(w, w.creator, 'arena.create', createBody(w, c.base, {}, [5, 3, 3, 200_000]), 'bad-deadline')
  refusedTx(w, w.creator, 'arena.create', createBody(w, c.base, { k1: 65 }), 'bad-k')
  refusedTx(w, w.creator, 'arena.create', createBody(w, c.base, { k2: 0 }), 'malformed')
  const elsewhere = world()
  const unknown = registerBase(elsewhere, elsewhere.creator, utf8('another'))
  refusedTx(w, w.creator, 'arena.create', createBody(w, unknown), 'unknown-base-model')
  refusedTx(
    w,
    w.creator,
    'arena.create',
    createBody(w, c.base, { baseModel: { kind: 'metablock', hash: 'ab'.repeat(32) } }),
    'unknown-base-model',
  )
  refusedTx(w, w.creator, 'arena.create', createBody(w, c.base, { price: 0n }), 'malformed')
  // the name belongs to another owner's model
  registerBase(w, w.outsider, utf8('outsider model'), 'taken')
  refusedTx(w, w.creator, 'arena.create', createBody(w, c.base, { name: 'taken', price: 2n }), 'name-taken')
  refusedTx(
    w,
    w.creator,
    'arena.create',
    createBody(w, c.base, { validationCommitB: sha256(utf8('set A')) }),
    'malformed',
  )
  refusedTx(w, w.creator, 'arena.create', { ...createBody(w, c.base), extra: 1 }, 'malformed')
})

test('bond: roles are exclusive, the creator may not train, minimums and windows hold', () => {
  const c = cast(1, 1)
  const task = createTask(c)
  const [t] = c.trainers
  const [v] = c.validators
  refusedTx(c.w, c.w.creator, 'arena.bond', { task, role: 'trainer', amount: 1_000n }, 'creator-cannot-train')
  refusedTx(c.w, t!, 'arena.bond', { task, role: 'trainer', amount: 99n }, 'bond-too-small')
  tx(c.w, t!, 'arena.bond', { task, role: 'trainer', amount: 100n })
  refusedTx(c.w, t!, 'arena.bond', { task, role: 'validator', amount: 1_000n }, 'role-conflict')
  tx(c.w, v!, 'arena.bond', { task, role: 'validator', amount: 500n })
  refusedTx(c.w, v!, 'arena.bond', { task, role: 'trainer', amount: 1_000n }, 'role-conflict')
  refusedTx(c.w, t!, 'arena.bond', { task: 99, role: 'trainer', amount: 1_000n }, 'unknown-task')
  advanceTo(c.w, readTask(c.w.state, task)!.submitDeadline)
  refusedTx(c.w, c.w.outsider, 'arena.bond', { task, role: 'trainer', amount: 1_000n }, 'bond-closed')
  tx(c.w, c.w.outsider, 'arena.bond', { task, role: 'validator', amount: 1_000n })
  assert.equal(readTask(c.w.state, task)?.validators, 2)
})

test('weights are committed before the deadline and published after it, opening the commitment', () => {
  const c = cast(2, 1)
  const task = createTask(c, {}, [20, 10, 8, 5])
  const [a, b] = c.trainers as [Actor, Actor]
  const wa = weights(utf8('weights of a'))
  refusedTx(c.w, a, 'arena.submit', submitBody(task, a, wa), 'not-bonded')
  tx(c.w, a, 'arena.bond', { task, role: 'trainer', amount: 1_000n })
  tx(c.w, b, 'arena.bond', { task, role: 'trainer', amount: 1_000n })
  tx(c.w, a, 'arena.submit', submitBody(task, a, wa))
  refusedTx(c.w, a, 'arena.submit', submitBody(task, a, wa), 'already-submitted')
  refusedTx(c.w, a, 'arena.publish', publishBody(task, wa), 'too-early')
  const t0 = readTask(c.w.state, task)!
  advanceTo(c.w, t0.submitDeadline)
  refusedTx(c.w, b, 'arena.submit', submitBody(task, b, wa), 'submit-closed')
  refusedTx(c.w, b, 'arena.publish', publishBody(task, wa), 'no-submission')
  refusedTx(c.w, a, 'arena.publish', publishBody(task, weights(utf8('other'), wa.salt)), 'commitment-mismatch')
  refusedTx(c.w, a, 'arena.publish', { ...publishBody(task, wa), salt: new Uint8Array(32) }, 'commitment-mismatch')
  tx(c.w, a, 'arena.publish', publishBody(task, wa))
  refusedTx(c.w, a, 'arena.publish', publishBody(task, wa), 'already-published')
  advanceTo(c.w, t0.publishDeadline)
  const drawEvents = block(c.w)
  const drawn = events(drawEvents, 'arena.drawn')[0]
  assert.equal(drawn?.attributes.submissions, '0')
  assert.equal(readDraw(c.w.state, task)?.validators.length, 0)
})

test('a whole task: consensus ranks the trainers, the top k1 and k2 are paid, bonds return, the winner is registered with lineage', () => {
  const c = cast(3, 3)
  const supply = totalSupply(c.w.state)
  const task = createTask(c, { price: 4n, k1: 2, k2: 3 })
  throughDraw(c, task, [utf8('w0'), utf8('w1'), utf8('w2')])
  const balances = [...c.trainers, ...c.validators].map((a) => balanceOf(c.w.state, a.did))
  const ev = scoreAndSettle(c, task, (v, s) => (QUALITY[s] ?? 0) + v * 1_000)
  const result = readResult(c.w.state, task)!
  assert.equal(readTask(c.w.state, task)?.status, 'settled')
  assert.deepEqual(
    result.submissions.map((s) => [s.rank, s.status, s.payout > 0n]),
    [
      [1, 'ranked', true],
      [2, 'ranked', true],
      [3, 'ranked', false],
    ],
  )
  const paid =
    result.submissions.reduce((s, x) => s + x.payout, 0n) + result.validators.reduce((s, v) => s + v.payout, 0n)
  assert.equal(paid + result.refund, 100_000n)
  assert.ok(result.validators.every((v) => v.payout > 0n && v.slashed === 0n))
  // each participant got its bond back (less its fees) plus its pay
  // after the draw, trainers send nothing more; validators commit and reveal (a fee each)
  ;[...c.trainers, ...c.validators].forEach((a, i) => {
    const pay = [
      ...result.submissions.filter((s) => s.trainer === a.did),
      ...result.validators.filter((v) => v.did === a.did),
    ].reduce((s, x) => s + x.payout, 0n)
    const [bond, fees] = i < 3 ? [1_000n, 0n] : [2_000n, 2n]
    assert.equal(balanceOf(c.w.state, a.did), balances[i]! - fees + bond + pay, `participant ${i}`)
  })
  assert.equal(escrowBalance(c.w.state), 0n)
  assert.equal(totalSupply(c.w.state), supply, 'nothing burned, nothing minted (fees go to the chain validators)')
  // the winner is in the market under the task's name
  const model = modelByName(c.w.state, 'digits-arena')
  assert.equal(model?.cid, result.winner?.weightsCid)
  assert.equal(model?.version, `arena-${task}`)
  assert.equal(model?.owner, c.w.creator.did)
  assert.equal(model?.deposit, 1_000n)
  const lineage = modelLineage(c.w.state, model!.cid)
  assert.equal(lineage?.task, String(task))
  assert.equal(lineage?.parent, c.base)
  assert.deepEqual(lineage?.contributors[0], { did: c.trainers[0]!.did, role: 'trainer' })
  assert.equal(events(ev, 'arena.registered').length, 1)
  assert.equal(result.winner?.registered, true)
})

test('no reveal: no weight and a small slash; unpublished weights: a small slash; both burned', () => {
  const c = cast(3, 3)
  const task = createTask(c)
  const wts = [0, 1, 2].map((i) => weights(utf8(`w${i}`), new Uint8Array(32).fill(i + 1)))
  block(c.w, [
    ...c.trainers.map((t): TxSpec => [t, 'arena.bond', { task, role: 'trainer', amount: 1_000n }]),
    ...c.validators.map((v): TxSpec => [v, 'arena.bond', { task, role: 'validator', amount: 2_000n }]),
  ])
  block(
    c.w,
    c.trainers.map((t, i): TxSpec => [t, 'arena.submit', submitBody(task, t, wts[i]!)]),
  )
  const t0 = readTask(c.w.state, task)!
  advanceTo(c.w, t0.submitDeadline)
  // trainer 2 never publishes
  block(
    c.w,
    c.trainers.slice(0, 2).map((t, i): TxSpec => [t, 'arena.publish', publishBody(task, wts[i]!)]),
  )
  advanceTo(c.w, t0.publishDeadline + 1)
  const supply = totalSupply(c.w.state)
  const silent = c.validators[2]!
  const before = balanceOf(c.w.state, silent.did)
  const ev = scoreAndSettle(c, task, (_v, s) => QUALITY[s] ?? 0, c.validators.slice(0, 2))
  const result = readResult(c.w.state, task)!
  const v2 = result.validators.find((v) => v.did === silent.did)!
  assert.equal(v2.revealed, false)
  assert.equal(v2.payout, 0n)
  assert.equal(v2.slashed, 100n, '5% of 2000')
  assert.equal(balanceOf(c.w.state, silent.did), before - 1n + 2_000n - 100n)
  const s2 = result.submissions[2]!
  assert.equal(s2.status, 'unpublished')
  assert.equal(s2.slashed, 50n)
  assert.equal(totalSupply(c.w.state), supply - 150n)
  assert.deepEqual(
    events(ev, 'arena.slashed')
      .map((e) => e.attributes.reason)
      .sort(),
    ['no-reveal', 'unpublished'],
  )
  assert.equal(escrowBalance(c.w.state), 0n)
})

test('scores: only the drawn assignment, only opening the commitment, only in their windows', () => {
  const c = cast(2, 2)
  const task = createTask(c, {}, [20, 5, 8, 10])
  throughDraw(c, task, [utf8('w0'), utf8('w1')])
  const [v0, v1] = c.validators as [Actor, Actor]
  const mine = scoresFor(c.w, task, v0, () => 800_000)
  assert.deepEqual(
    mine.map((s) => s.submission),
    [0, 1],
  )
  refusedTx(c.w, c.w.outsider, 'arena.commitScores', commitBody(task, c.w.outsider, mine, SALT), 'not-validator')
  tx(c.w, v0, 'arena.commitScores', commitBody(task, v0, mine, SALT))
  refusedTx(c.w, v0, 'arena.revealScores', revealBody(task, mine, SALT), 'too-early')
  const theirs = scoresFor(c.w, task, v1, () => 800_000)
  tx(c.w, v1, 'arena.commitScores', commitBody(task, v1, theirs, SALT))
  const t0 = readTask(c.w.state, task)!
  advanceTo(c.w, t0.scoreDeadline)
  refusedTx(c.w, v0, 'arena.revealScores', revealBody(task, mine.slice(0, 1), SALT), 'bad-assignment')
  const flipped = mine.map((s) => ({ ...s, set: s.set === 'A' ? ('B' as const) : ('A' as const) }))
  refusedTx(c.w, v0, 'arena.revealScores', revealBody(task, flipped, SALT), 'bad-assignment')
  refusedTx(
    c.w,
    v0,
    'arena.revealScores',
    revealBody(
      task,
      mine.map((s) => ({ ...s, score: 900_000 })),
      SALT,
    ),
    'commitment-mismatch',
  )
  tx(c.w, v0, 'arena.revealScores', revealBody(task, mine, SALT))
  refusedTx(c.w, v0, 'arena.revealScores', revealBody(task, mine, SALT), 'already-revealed')
  refusedTx(c.w, c.w.outsider, 'arena.revealScores', revealBody(task, mine, SALT), 'no-commitment')
  advanceTo(c.w, t0.revealDeadline)
  assert.equal(readTask(c.w.state, task)?.status, 'settled')
  refusedTx(c.w, v1, 'arena.revealScores', revealBody(task, theirs, SALT), 'task-settled')
})

test('the draw: each submission is scored on both sets; duplicates are set aside; the seed is the block id', () => {
  const c = cast(3, 4)
  const task = createTask(c)
  throughDraw(c, task, [utf8('same'), utf8('other'), utf8('same')])
  const record = readDraw(c.w.state, task)!
  assert.deepEqual(record.submissions, [0, 1])
  assert.deepEqual(record.duplicates, [[2, 0]])
  for (const s of record.submissions) {
    const sets = c.validators.map((v) => scoresFor(c.w, task, v, () => 0).find((x) => x.submission === s)?.set)
    assert.deepEqual([...new Set(sets)].sort(), ['A', 'B'])
  }
  scoreAndSettle(c, task, (_v, s) => QUALITY[s] ?? 0)
  const result = readResult(c.w.state, task)!
  assert.equal(result.submissions[2]?.status, 'duplicate')
  assert.equal(result.submissions[2]?.payout, 0n)
  assert.equal(result.submissions[2]?.duplicateOf, 0)
  assert.equal(result.submissions[2]?.slashed, 0n)
})

test('a task nobody joins refunds its pool and deposit', () => {
  const c = cast(0, 0)
  const before = balanceOf(c.w.state, c.w.creator.did)
  const task = createTask(c, { price: 4n })
  const ev = advanceTo(c.w, readTask(c.w.state, task)!.revealDeadline)
  assert.equal(balanceOf(c.w.state, c.w.creator.did), before - 1n)
  assert.equal(escrowBalance(c.w.state), 0n)
  assert.equal(events(ev, 'arena.settled')[0]?.attributes.refund, '100000')
  assert.equal(BALANCE > 0n, true)
})
