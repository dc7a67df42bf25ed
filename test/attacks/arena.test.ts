// Attacks on an Arena task, through the arena module's transactions on a real state machine:
// copying a score commitment, copying weights after they are published, committing blind and
// hoping to open with another's CID, replaying an earlier task's scores, a lookup model that
// memorised one hidden set, and a validator stake split into ten identities (figures printed).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { utf8 } from '../../src/core/bytes.ts'
import { balanceOf } from '../../src/bank/bank.ts'
import { readDraw, readResult, readScoreCommit, readTask } from '../../src/arena/chain/module.ts'
import {
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
  type Weights,
  type World,
} from '../../src/arena/chain/test-kit.ts'

const SALT = new Uint8Array(32).fill(9)

interface Task {
  w: World
  id: number
  trainers: Actor[]
  validators: Actor[]
  files: Weights[]
}

/** A task with `n` trainers (files w0…), validators bonded with `stakes`; at the draw. */
function atDraw(n: number, stakes: bigint[], overrides: Record<string, unknown> = {}): Task {
  const trainers = Array.from({ length: n }, (_, i) => actor(`trainers ${i}`))
  const validators = stakes.map((_, i) => actor(`validator ${i}`))
  const w = world({ funded: [...trainers, ...validators] })
  const base = registerBase(w, w.creator)
  const created = tx(w, w.creator, 'arena.create', createBody(w, base, { k1: 2, k2: 20, ...overrides }))
  const id = Number(events(created, 'arena.created')[0]?.attributes.task)
  const files = trainers.map((_, i) => weights(utf8(`weights ${i}`), new Uint8Array(32).fill(i + 1)))
  block(w, [
    ...trainers.map((t): TxSpec => [t, 'arena.bond', { task: id, role: 'trainer', amount: 1_000n }]),
    ...validators.map((v, i): TxSpec => [v, 'arena.bond', { task: id, role: 'validator', amount: stakes[i]! }]),
  ])
  block(
    w,
    trainers.map((t, i): TxSpec => [t, 'arena.submit', submitBody(id, t, files[i]!)]),
  )
  const t0 = readTask(w.state, id)!
  advanceTo(w, t0.submitDeadline)
  block(
    w,
    trainers.map((t, i): TxSpec => [t, 'arena.publish', publishBody(id, files[i]!)]),
  )
  advanceTo(w, t0.publishDeadline + 1)
  return { w, id, trainers, validators, files }
}

type Scorer = (validator: number, submission: number, set: 'A' | 'B') => number

/** Commits and reveals `score` for `who` (default: all); runs to settlement. */
function settleWith(task: Task, score: Scorer, who: number[] = task.validators.map((_, i) => i)) {
  const { w, id } = task
  const t0 = readTask(w.state, id)!
  const scores = task.validators.map((v, i) => scoresFor(w, id, v, (s, set) => score(i, s, set)))
  block(
    w,
    who.map((i): TxSpec => [
      task.validators[i]!,
      'arena.commitScores',
      commitBody(id, task.validators[i]!, scores[i]!, SALT),
    ]),
  )
  advanceTo(w, t0.scoreDeadline)
  block(
    w,
    who.map((i): TxSpec => [task.validators[i]!, 'arena.revealScores', revealBody(id, scores[i]!, SALT)]),
  )
  advanceTo(w, t0.revealDeadline)
  return readResult(w.state, id)!
}

const QUALITY = [920_000, 860_000, 780_000, 700_000]
const honest: Scorer = (v, s, set) => (QUALITY[s] ?? 0) - (set === 'B' ? 10_000 : 0) + ((v * 3_001) % 7_000)

test('copying a score commitment is useless: it names its author, so the copier cannot open it', () => {
  const task = atDraw(2, [1_000n, 1_000n, 1_000n])
  const { w, id, validators } = task
  const [a, b, copier] = validators as [Actor, Actor, Actor]
  const t0 = readTask(w.state, id)!
  const scoresA = scoresFor(w, id, a, (s, set) => honest(0, s, set))
  const scoresB = scoresFor(w, id, b, (s, set) => honest(1, s, set))
  block(w, [
    [a, 'arena.commitScores', commitBody(id, a, scoresA, SALT)],
    [b, 'arena.commitScores', commitBody(id, b, scoresB, SALT)],
  ])
  // the copier reads a's commitment off the chain and posts it as its own
  tx(w, copier, 'arena.commitScores', { task: id, commitment: readScoreCommit(w.state, id, a.did) })
  advanceTo(w, t0.scoreDeadline)
  block(w, [
    [a, 'arena.revealScores', revealBody(id, scoresA, SALT)],
    [b, 'arena.revealScores', revealBody(id, scoresB, SALT)],
  ])
  // then copies a's revealed scores and salt: refused (its own assignment, its own DID)
  refusedTx(w, copier, 'arena.revealScores', revealBody(id, scoresA, SALT), 'bad-assignment')
  const own = scoresFor(w, id, copier, (s) => scoresA.find((x) => x.submission === s)?.score ?? 0)
  refusedTx(w, copier, 'arena.revealScores', revealBody(id, own, SALT), 'commitment-mismatch')
  advanceTo(w, t0.revealDeadline)
  const result = readResult(w.state, id)!
  const c = result.validators.find((v) => v.did === copier.did)!
  assert.equal(c.payout, 0n)
  assert.equal(c.slashed, 50n, 'no reveal: 5% of its bond')
})

test('a trainer cannot take published weights: a blind commitment does not open with them, a late copy is a duplicate', () => {
  const trainers = Array.from({ length: 3 }, (_, i) => actor(`trainers ${i}`))
  const validators = Array.from({ length: 3 }, (_, i) => actor(`validators ${i}`))
  const w = world({ funded: [...trainers, ...validators] })
  const base = registerBase(w, w.creator)
  const created = tx(w, w.creator, 'arena.create', createBody(w, base, { k1: 3 }))
  const id = Number(events(created, 'arena.created')[0]?.attributes.task)
  const [victim, blind, late] = trainers as [Actor, Actor, Actor]
  const good = weights(utf8('the good weights'))
  block(w, [
    ...trainers.map((t): TxSpec => [t, 'arena.bond', { task: id, role: 'trainer', amount: 1_000n }]),
    ...validators.map((v): TxSpec => [v, 'arena.bond', { task: id, role: 'validator', amount: 1_000n }]),
  ])
  tx(w, victim, 'arena.submit', submitBody(id, victim, good))
  // the blind one commits to something it hopes to replace later
  tx(w, blind, 'arena.submit', submitBody(id, blind, weights(utf8('placeholder'))))
  const t0 = readTask(w.state, id)!
  advanceTo(w, t0.submitDeadline)
  tx(w, victim, 'arena.publish', publishBody(id, good))
  // it sees the victim's CID on chain and tries to open its commitment with it (any salt)
  refusedTx(
    w,
    blind,
    'arena.publish',
    publishBody(id, { ...good, salt: new Uint8Array(32).fill(3) }),
    'commitment-mismatch',
  )
  refusedTx(w, blind, 'arena.publish', publishBody(id, good), 'commitment-mismatch')
  // and the late one cannot commit any more
  refusedTx(w, late, 'arena.submit', submitBody(id, late, good), 'submit-closed')
  advanceTo(w, t0.publishDeadline + 1)
  const result = settleWithValidators(w, id, validators)
  assert.equal(result.submissions[0]?.rank, 1)
  assert.equal(result.submissions[1]?.status, 'unpublished')
  assert.equal(result.submissions[1]?.payout, 0n)
  assert.equal(result.submissions[1]?.slashed, 50n)
})

function settleWithValidators(w: World, id: number, validators: Actor[]) {
  return settleWith({ w, id, trainers: [], validators, files: [] }, honest)
}

test('a copy of the same weights committed later is a duplicate: nothing, even when it commits in the same block', () => {
  const trainers = Array.from({ length: 2 }, (_, i) => actor(`trainers ${i}`))
  const validators = Array.from({ length: 3 }, (_, i) => actor(`validators ${i}`))
  const w = world({ funded: [...trainers, ...validators] })
  const base = registerBase(w, w.creator)
  const id = Number(events(tx(w, w.creator, 'arena.create', createBody(w, base)), 'arena.created')[0]?.attributes.task)
  const same = utf8('identical weights')
  const files = trainers.map((_, i) => weights(same, new Uint8Array(32).fill(i + 5)))
  block(w, [
    ...trainers.map((t): TxSpec => [t, 'arena.bond', { task: id, role: 'trainer', amount: 1_000n }]),
    ...validators.map((v): TxSpec => [v, 'arena.bond', { task: id, role: 'validator', amount: 1_000n }]),
  ])
  block(
    w,
    trainers.map((t, i): TxSpec => [t, 'arena.submit', submitBody(id, t, files[i]!)]),
  )
  const t0 = readTask(w.state, id)!
  advanceTo(w, t0.submitDeadline)
  block(
    w,
    trainers.map((t, i): TxSpec => [t, 'arena.publish', publishBody(id, files[i]!)]),
  )
  advanceTo(w, t0.publishDeadline + 1)
  assert.deepEqual(readDraw(w.state, id)?.duplicates, [[1, 0]])
  const result = settleWithValidators(w, id, validators)
  assert.equal(result.submissions[0]?.status, 'ranked')
  assert.equal(result.submissions[1]?.status, 'duplicate')
  assert.equal(result.submissions[1]?.payout, 0n)
})

test("a validator replaying an earlier task's revealed scores earns less than each honest one", (t) => {
  const first = atDraw(4, [1_000n, 1_000n, 1_000n, 1_000n])
  const earlier = settleWith(first, honest)
  assert.ok(earlier.validators.every((v) => v.payout > 0n))
  // task 2: the same cast in a new task, different models (qualities in another order)
  const second = atDraw(4, [1_000n, 1_000n, 1_000n, 1_000n])
  const shuffled = [700_000, 920_000, 780_000, 860_000]
  const replayed = new Map(
    scoresFor(first.w, first.id, first.validators[0]!, (s, set) => honest(0, s, set)).map((x) => [
      x.submission,
      x.score,
    ]),
  )
  const result = settleWith(second, (v, s, set) =>
    v === 3 ? (replayed.get(s) ?? 0) : (shuffled[s] ?? 0) - (set === 'B' ? 10_000 : 0) + ((v * 3_001) % 7_000),
  )
  const lazy = result.validators.find((v) => v.did === second.validators[3]!.did)!
  t.diagnostic(result.validators.map((v) => `trust ${v.trustPpm} paid ${v.payout}`).join('; '))
  for (const v of result.validators.filter((x) => x.did !== lazy.did))
    assert.ok(lazy.payout < v.payout, `replayer ${lazy.payout} ≥ ${v.payout}`)
})

test('lookup: a model that memorised set A is flagged, paid nothing and slashed', () => {
  const task = atDraw(3, [1_000n, 1_000n, 1_000n, 1_000n])
  // submission 1 is perfect on A only
  const result = settleWith(task, (v, s, set) => (s === 1 && set === 'A' ? 1_000_000 : honest(v, s, set)))
  const s1 = result.submissions[1]!
  assert.equal(s1.status, 'lookup')
  assert.equal(s1.payout, 0n)
  assert.equal(s1.slashed, 50n)
  assert.equal(result.submissions[0]?.rank, 1)
})

test('sybil: one validator stake split into ten identities earns no more on chain (figures)', (t) => {
  // set-blind honest scores so that the split identities measure exactly as the whole one does
  const blind: Scorer = (_v, s) => QUALITY[s] ?? 0
  const whole = atDraw(3, [4_000n, 4_000n, 4_000n, 4_000n], { k2: 4 })
  const wholeResult = settleWith(whole, blind)
  const split = atDraw(3, [4_000n, 4_000n, 4_000n, ...Array.from({ length: 10 }, () => 400n)], { k2: 4 })
  const splitResult = settleWith(split, blind)
  const attacker = (r: typeof wholeResult, dids: string[]) =>
    r.validators.filter((v) => dids.includes(v.did)).reduce((s, v) => s + v.payout, 0n)
  const one = attacker(wholeResult, [whole.validators[3]!.did])
  const ten = attacker(
    splitResult,
    split.validators.slice(3).map((v) => v.did),
  )
  t.diagnostic(
    `k2=4, validator pool 30000: one identity of stake 4000 earns ${one}; ten of stake 400 earn ${ten} together`,
  )
  assert.ok(ten <= one)
  // with room for every identity (k2 = 20), splitting still earns exactly the same, not more
  const roomy = atDraw(3, [4_000n, 4_000n, 4_000n, ...Array.from({ length: 10 }, () => 400n)], { k2: 20 })
  const roomyResult = settleWith(roomy, blind)
  const tenRoomy = attacker(
    roomyResult,
    roomy.validators.slice(3).map((v) => v.did),
  )
  t.diagnostic(`k2=20: ten of stake 400 earn ${tenRoomy} together (one identity: ${one})`)
  assert.ok(tenRoomy <= one)
  assert.ok(balanceOf(split.w.state, split.validators[4]!.did) > 0n)
})
