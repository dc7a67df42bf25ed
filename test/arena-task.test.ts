// The Arena demonstration (issue 15): a task on the digits data with 5 trainers and 4
// validators, all through the arena module's transactions on a real state machine. Four
// trainers really train (the built-in deterministic MLP, different seeds and epochs, fine-tuning
// the registered base model or not); the fifth resubmits the first one's weights. Validators
// hold the two hidden sets (halves of the held-out digits) committed by hash, score their drawn
// assignment deterministically, commit, then reveal; one of them is lazy and reveals random
// scores. Asserted: the lazy validator earns less than each honest one, the copier gets nothing,
// the payouts stay within the pool, and the winner enters the inference market with its lineage.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { balanceOf } from '../src/bank/bank.ts'
import { DIGITS_RECIPE, readDigitsDataset } from '../src/inference/demo-models.ts'
import { createRng, splitDataset } from '../src/inference/trainer.ts'
import { modelByName } from '../src/inference/chain/state.ts'
import { modelLineage } from '../src/inference/chain/lineage.ts'
import { encodeValidationSet, openValidationSet, validationCommit } from '../src/arena/evaluate.ts'
import { prepareSubmission, publishTxBody, submitTxBody, trainBuiltIn } from '../src/arena/trainer.ts'
import { commitTxBody, prepareScores, revealTxBody, scoreAssignment } from '../src/arena/validator.ts'
import { assignmentIn, readDraw, readResult, readSubmission, readTask } from '../src/arena/chain/module.ts'
import { actor, advanceTo, block, events, registerBase, tx, world, type TxSpec } from '../src/arena/chain/test-kit.ts'

const LAZY_SEED = 2024

test('an Arena task on digits: 5 trainers (one copier), 4 validators (one lazy)', async (t) => {
  const digits = await readDigitsDataset()
  const { train, test: held } = splitDataset(digits, DIGITS_RECIPE.split)
  const halves = splitDataset(held, { seed: 7, testFraction: 0.5 })
  const setBytes = { A: encodeValidationSet(halves.train), B: encodeValidationSet(halves.test) }

  // named actors: the same DIDs, so the same draw and the same figures, on every run
  const trainers = Array.from({ length: 5 }, (_, i) => actor(`trainer ${i}`))
  const validators = Array.from({ length: 4 }, (_, i) => actor(`validator ${i}`))
  const w = world({ funded: [...trainers, ...validators] })
  const base = await trainBuiltIn(train, { epochs: 1, seed: 1 })
  const baseCid = registerBase(w, w.creator, base, 'digits-base')

  const created = tx(w, w.creator, 'arena.create', {
    name: 'digits-arena',
    baseModel: { kind: 'model', cid: baseCid },
    data: { kind: 'local' },
    validationCommitA: validationCommit(setBytes.A),
    validationCommitB: validationCommit(setBytes.B),
    submitDeadline: w.height + 6,
    publishDeadline: w.height + 9,
    scoreDeadline: w.height + 12,
    revealDeadline: w.height + 15,
    k1: 3,
    k2: 4,
    pool: 100_000n,
    price: 3n,
  })
  const task = Number(events(created, 'arena.created')[0]?.attributes.task)
  const t0 = readTask(w.state, task)!

  // trainers bond, train on their machines, commit
  block(w, [
    ...trainers.map((a): TxSpec => [a, 'arena.bond', { task, role: 'trainer', amount: 1_000n }]),
    ...validators.map((a): TxSpec => [a, 'arena.bond', { task, role: 'validator', amount: 5_000n }]),
  ])
  const recipes = [
    { epochs: 25, seed: 11 },
    { epochs: 10, seed: 12 },
    { epochs: 4, seed: 13 },
    { epochs: 2, seed: 14, hidden: [8] },
  ]
  const files = await Promise.all(recipes.map((r) => trainBuiltIn(train, { ...r, base })))
  const prepared = await Promise.all(files.map((bytes, i) => prepareSubmission(bytes, trainers[i]!.did)))
  // the copier commits to trainer 0's very weights (obtained out of band), one block later
  const copier = trainers[4]!
  const copied = await prepareSubmission(files[0]!, copier.did)
  block(
    w,
    prepared.map((p, i): TxSpec => [trainers[i]!, 'arena.submit', submitTxBody(task, p)]),
  )
  block(w, [[copier, 'arena.submit', submitTxBody(task, copied)]])
  advanceTo(w, t0.submitDeadline)

  // after the deadline: publish (the content network is a map here)
  const store = new Map<string, Uint8Array>()
  for (const p of [...prepared, copied]) store.set(p.cid, p.bytes)
  block(w, [
    ...prepared.map((p, i): TxSpec => [trainers[i]!, 'arena.publish', publishTxBody(task, p)]),
    [copier, 'arena.publish', publishTxBody(task, copied)],
  ])
  advanceTo(w, t0.publishDeadline + 1)
  const draw = readDraw(w.state, task)!
  assert.deepEqual(draw.duplicates, [[4, 0]], 'the copy is set aside at the draw')

  // validators open the hidden sets against the task's commitments and score their assignment
  const sets = {
    A: openValidationSet(setBytes.A, t0.validationCommitA),
    B: openValidationSet(setBytes.B, t0.validationCommitB),
  }
  const weightsOf = async (index: number) => {
    const cid = readSubmission(w.state, task, index)?.weightsCid
    return cid === undefined ? undefined : { cid, bytes: store.get(cid) }
  }
  const rng = createRng(LAZY_SEED)
  const lazy = validators[3]!
  const reveals = await Promise.all(
    validators.map(async (v) => {
      const assignment = assignmentIn(draw, v.did)
      const scores =
        v === lazy
          ? assignment.map((a) => ({ ...a, score: rng.int(1_000_001) }))
          : await scoreAssignment({ assignment, weightsOf, sets })
      return prepareScores(task, v.did, scores)
    }),
  )
  block(
    w,
    validators.map((v, i): TxSpec => [v, 'arena.commitScores', commitTxBody(task, reveals[i]!)]),
  )
  advanceTo(w, t0.scoreDeadline)
  const balances = validators.map((v) => balanceOf(w.state, v.did))
  block(
    w,
    validators.map((v, i): TxSpec => [v, 'arena.revealScores', revealTxBody(task, reveals[i]!)]),
  )
  const settled = advanceTo(w, t0.revealDeadline)
  assert.equal(events(settled, 'arena.settled').length, 1)

  const result = readResult(w.state, task)!
  for (const s of result.submissions)
    t.diagnostic(
      `submission ${s.index} (${s === result.submissions[4] ? 'copier' : `trainer ${s.index}`}): ${s.status}, consensus ${s.consensusPpm} ppm, score ${s.scorePpm}, A ${JSON.stringify(s.sets.A)} B ${JSON.stringify(s.sets.B)}, rank ${s.rank}, paid ${s.payout}`,
    )
  for (const [i, v] of result.validators.entries()) {
    const name = v.did === lazy.did ? 'lazy' : `honest ${validators.findIndex((x) => x.did === v.did)}`
    t.diagnostic(`validator ${i} (${name}): trust ${v.trustPpm} ppm, distance ${v.distancePpm} ppm, paid ${v.payout}`)
  }
  const trainerPaid = result.submissions.reduce((s, x) => s + x.payout, 0n)
  const validatorPaid = result.validators.reduce((s, x) => s + x.payout, 0n)
  t.diagnostic(
    `pool 100000: trainers ${trainerPaid}, validators ${validatorPaid}, back to the creator ${result.refund}`,
  )

  // the lazy validator earns less than each honest one
  const lazyPay = result.validators.find((v) => v.did === lazy.did)!.payout
  for (const v of result.validators.filter((x) => x.did !== lazy.did))
    assert.ok(lazyPay < v.payout, `lazy ${lazyPay} ≥ honest ${v.payout}`)
  // and the balances say so too (each paid the same fees)
  validators
    .slice(0, 3)
    .forEach((v, i) =>
      assert.ok(balanceOf(w.state, lazy.did) - balances[3]! < balanceOf(w.state, v.did) - balances[i]!),
    )
  // the copier gets nothing
  const copy = result.submissions[4]!
  assert.equal(copy.trainer, copier.did)
  assert.equal(copy.status, 'duplicate')
  assert.equal(copy.payout, 0n)
  // the trained models differ, and more training ranked higher
  assert.equal(new Set(files.map((f) => Buffer.from(f).toString('base64'))).size, 4)
  assert.equal(result.submissions[0]?.rank, 1)
  // nothing beyond the pool
  assert.ok(trainerPaid + validatorPaid <= 100_000n)
  assert.equal(trainerPaid + validatorPaid + result.refund, 100_000n)
  // the winner is in the inference market under the task's name, with its lineage
  const model = modelByName(w.state, 'digits-arena')
  assert.equal(model?.cid, prepared[0]!.cid)
  const lineage = modelLineage(w.state, prepared[0]!.cid)
  assert.equal(lineage?.source, 'arena')
  assert.equal(lineage?.parent, baseCid)
  assert.equal(lineage?.contributors[0]?.did, trainers[0]!.did)
})
