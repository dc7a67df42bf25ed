/**
 * arena: AI Arena training tasks scored by staked validators (seed 003: FLock's AI Arena; the
 * consensus is Bittensor's Yuma, simplified - scoring.ts). A creator escrows a reward pool and
 * posts a task; trainers bond, train on their machines and commit to their weights; after the
 * submission deadline they publish the weights (CID) - too late for anyone to copy them; the
 * chain draws which hidden validation set (A or B) each validator scores each submission on;
 * validators commit to their scores, then reveal them; at the reveal deadline the chain computes
 * the stake-weighted kappa-quantile consensus, pays the top k1 trainers and the k2 validators closest
 * to consensus from the pool, returns the bonds less the slashes, and returns what was not paid
 * to the creator. With a `price`, the winning weights enter the inference market under the
 * task's name, their lineage in the registry record. Money is bigint; scores ppm; no floating
 * point touches state or pay.
 *
 * Transactions (`arena.<kind>`, dag-cbor maps decoded strictly by decode.ts); each refusal is
 * included as failed with its reason (the fee is kept, nothing else written):
 *
 *   create         { name, baseModel, data, validationCommitA, validationCommitB, submitDeadline,
 *                    publishDeadline, scoreDeadline, revealDeadline, k1, k2, pool, price?, note? }
 *                  The pool (and, with a price, the market's `modelDeposit`) moves from the
 *                  creator into escrow (`spends`). 'pool-too-small' (below governed
 *                  `arena.minRewardPool`), 'too-many-tasks' (governed `arena.maxTasksOpen` open),
 *                  'bad-deadline' (submitDeadline not after this height, or the task longer than
 *                  maxTaskBlocks), 'bad-k' (k1 > maxTrainers, k2 > maxValidators, either > maxPaid),
 *                  'unknown-base-model' (no such active model or MetaBlock); with a price:
 *                  'not-registrable' (the base is not a registered tensor model), 'price-too-low',
 *                  'name-taken' (the name is another owner's model). Emits `arena.created`.
 *   bond           { task, role, amount }: adds to the sender's bond in that role. 'unknown-task',
 *                  'task-settled', 'bond-closed' (trainers until submitDeadline, validators until
 *                  publishDeadline), 'creator-cannot-train' (the creator knows the hidden sets),
 *                  'role-conflict' (never trainer and validator on one task), 'task-full',
 *                  'bond-too-small' (the total below minTrainerBond / minValidatorBond).
 *                  Emits `arena.bonded`.
 *   submit         { task, commitment }: sha256(weights digest || trainer DID || salt), until
 *                  submitDeadline; one per trainer. 'submit-closed', 'not-bonded',
 *                  'already-submitted'. Its index (commitment order) decides duplicates.
 *                  Emits `arena.submitted`.
 *   publish        { task, weightsCid, size, salt }, after submitDeadline until publishDeadline:
 *                  the CID (raw codec: its digest is the file's sha256) must open the commitment.
 *                  'too-early', 'publish-closed', 'no-submission', 'already-published',
 *                  'commitment-mismatch'. Emits `arena.published`.
 *   commitScores   { task, commitment }: scoresCommitment(task, validator, scores, salt), after the
 *                  draw until scoreDeadline (a later commit replaces an earlier one). 'too-early',
 *                  'commit-closed', 'not-validator' (not bonded at the draw), 'nothing-to-score'.
 *                  Emits `arena.scoresCommitted`.
 *   revealScores   { task, scores: [{ submission, set, score }], salt }, after scoreDeadline until
 *                  revealDeadline: exactly the validator's assignment ('bad-assignment'),
 *                  opening its commitment ('commitment-mismatch'). 'too-early', 'reveal-closed',
 *                  'no-commitment', 'already-revealed'. Emits `arena.scoresRevealed`.
 *
 * Start of block publishDeadline + 1: the draw. Its seed is the block's parent id (the last
 * block of the publish window); it fixes the scored submissions (published, duplicates set
 * aside: the earliest commitment keeps the digest), the validators (bonded then) and, through
 * assignment.ts, the set each validator scores each submission on. Emits `arena.drawn`.
 *
 * End of block revealDeadline: settlement (scoring.ts). A trainer whose weights were never
 * published, or flagged by the lookup check, and a validator with an assignment that revealed
 * nothing lose `slashBps` of their bond (burned); every other bond returns whole. Emits
 * `arena.paid` (each payment), `arena.slashed`, `arena.registered` or `arena.notRegistered`,
 * then `arena.settled`.
 *
 * State layout: state.ts.
 */
import { TxError } from '../../chain/errors.ts'
import type { BlockContext, ChainEvent, ChainModule, TxHandler } from '../../chain/host.ts'
import type { ChainParams } from '../../chain/genesis.ts'
import type { StateOverlay } from '../../chain/state-view.ts'
import { burn, credit, debit } from '../../bank/bank.ts'
import { fromHex, toHex } from '../../core/bytes.ts'
import { governedUint } from '../../governance/params.ts'
import { modelByCid, modelByName } from '../../inference/chain/state.ts'
import { registerModelWithLineage } from '../../inference/chain/lineage.ts'
import { metaByHash } from '../../experts/chain/state.ts'
import { assignmentOf } from '../assignment.ts'
import { canonicalScores, scoresCommitment, submissionCommitment } from '../commitments.ts'
import { ARENA_DEFAULTS, BPS, GOV_MAX_TASKS_OPEN, GOV_MIN_REWARD_POOL, type ArenaTunables } from '../constants.ts'
import { duplicatesOf, scoreTask, type ScoreEntry, type SubmissionOutcome } from '../scoring.ts'
import type {
  BondBody,
  CommitScoresBody,
  CreateBody,
  DrawRecord,
  PublishBody,
  RevealScoresBody,
  SubmissionResult,
  SubmitBody,
  TaskRecord,
  TaskResult,
  ValidatorResult,
} from '../types.ts'
import {
  decodeBond,
  decodeCommitScores,
  decodeCreate,
  decodePublish,
  decodeRevealScores,
  decodeSubmit,
  refuse,
  weightsDigest,
} from './decode.ts'
import {
  OPEN,
  addEscrow,
  defined,
  drawDue,
  drawKey,
  listSubmissions,
  nextTaskId,
  readBond,
  readDraw,
  readScoreCommit,
  readScoreReveal,
  readSubmission,
  readTask,
  scoreCommitKey,
  scoreRevealKey,
  settleDue,
  submissionOf,
  submissionOfKey,
  trainersSet,
  validatorsSet,
  writeBond,
  writeResult,
  writeSubmission,
  writeTask,
} from './state.ts'

export * from './state.ts'

type Emit = (event: ChainEvent) => void
type MarketParams = Pick<ChainParams, 'minModelPrice' | 'modelDeposit'>

// ---- create ------------------------------------------------------------------------------------

function checkBase(state: StateOverlay, body: CreateBody, params: MarketParams): void {
  const base = body.baseModel
  if (base.kind === 'model') {
    const model = modelByCid(state, base.cid)
    if (model === undefined || model.status !== 'active')
      refuse('unknown-base-model', `model ${base.cid} is not an active registered model`)
  } else if (metaByHash(state, base.hash) === undefined) {
    refuse('unknown-base-model', `${base.hash} is not a MetaBlock on chain`)
  }
  if (body.price === undefined) return
  const model = base.kind === 'model' ? modelByCid(state, base.cid) : undefined
  if (model === undefined || model.kind !== 'tensor')
    refuse('not-registrable', 'only a task on a registered tensor model can register its winner (omit price)')
  if (body.price < params.minModelPrice)
    refuse('price-too-low', `price ${body.price} is below the market's minimum ${params.minModelPrice}`)
}

function createTx(params: MarketParams, t: ArenaTunables): TxHandler<CreateBody> {
  return {
    decodeBody: decodeCreate,
    spends: (body) => body.pool + (body.price === undefined ? 0n : params.modelDeposit),
    apply(state, tx, body, ctx) {
      const minPool = governedUint(state, GOV_MIN_REWARD_POOL, t.defaultMinRewardPool)
      if (body.pool < minPool) refuse('pool-too-small', `the reward pool must be at least ${minPool}`)
      const maxOpen = governedUint(state, GOV_MAX_TASKS_OPEN, t.defaultMaxTasksOpen)
      if (BigInt(OPEN.size(state)) >= maxOpen)
        refuse('too-many-tasks', `${maxOpen} tasks are open; wait for one to settle`)
      if (body.submitDeadline <= ctx.height)
        refuse('bad-deadline', `submitDeadline ${body.submitDeadline} must be after this height (${ctx.height})`)
      if (body.revealDeadline - ctx.height > t.maxTaskBlocks)
        refuse('bad-deadline', `a task may run at most ${t.maxTaskBlocks} blocks`)
      if (body.k1 > Math.min(t.maxTrainers, t.maxPaid) || body.k2 > Math.min(t.maxValidators, t.maxPaid))
        refuse(
          'bad-k',
          `k1 must be at most ${Math.min(t.maxTrainers, t.maxPaid)}, k2 at most ${Math.min(t.maxValidators, t.maxPaid)}`,
        )
      checkBase(state, body, params)
      const owner = modelByName(state, body.name)?.owner
      if (body.price !== undefined && owner !== undefined && owner !== tx.sender)
        refuse('name-taken', `the model name ${body.name} belongs to ${owner}`)
      const deposit = body.price === undefined ? 0n : params.modelDeposit
      debit(state, tx.sender, body.pool + deposit)
      addEscrow(state, body.pool + deposit)
      const task: TaskRecord = defined({
        ...body,
        id: nextTaskId(state),
        creator: tx.sender,
        createdAt: ctx.height,
        validationCommitA: toHex(body.validationCommitA),
        validationCommitB: toHex(body.validationCommitB),
        deposit,
        trainers: 0,
        validators: 0,
        submissions: 0,
        status: 'open' as const,
      })
      writeTask(state, task)
      OPEN.add(state, String(task.id))
      drawDue(task.publishDeadline + 1).add(state, String(task.id))
      settleDue(task.revealDeadline).add(state, String(task.id))
      ctx.emit({
        type: 'arena.created',
        attributes: {
          task: String(task.id),
          name: task.name,
          creator: tx.sender,
          pool: String(task.pool),
          k1: String(task.k1),
          k2: String(task.k2),
          submitDeadline: String(task.submitDeadline),
          revealDeadline: String(task.revealDeadline),
        },
      })
    },
  }
}

// ---- bond, submit, publish -----------------------------------------------------------------------

function openTask(state: StateOverlay, id: number): TaskRecord {
  const task = readTask(state, id)
  if (task === undefined) refuse('unknown-task', `there is no arena task ${id}`)
  if (task.status !== 'open') refuse('task-settled', `task ${id} is settled`)
  return task
}

function bondTx(t: ArenaTunables): TxHandler<BondBody> {
  return {
    decodeBody: decodeBond,
    spends: (body) => body.amount,
    apply(state, tx, body, ctx) {
      const task = openTask(state, body.task)
      const trainer = body.role === 'trainer'
      const closes = trainer ? task.submitDeadline : task.publishDeadline
      if (ctx.height > closes) refuse('bond-closed', `${body.role} bonds on task ${task.id} closed at height ${closes}`)
      if (trainer && tx.sender === task.creator)
        refuse('creator-cannot-train', "the task's creator holds its validation sets and may not train on it")
      const bond = readBond(state, task.id, tx.sender)
      if (bond !== undefined && bond.role !== body.role)
        refuse(
          'role-conflict',
          `${tx.sender} is a ${bond.role} on task ${task.id}; no node is both trainer and validator`,
        )
      const count = trainer ? task.trainers : task.validators
      if (bond === undefined && count >= (trainer ? t.maxTrainers : t.maxValidators))
        refuse('task-full', `task ${task.id} has its ${count} ${body.role}s`)
      const amount = (bond?.amount ?? 0n) + body.amount
      const min = trainer ? t.minTrainerBond : t.minValidatorBond
      if (amount < min) refuse('bond-too-small', `a ${body.role} bond must reach ${min}; this one would be ${amount}`)
      debit(state, tx.sender, body.amount)
      addEscrow(state, body.amount)
      writeBond(state, task.id, tx.sender, { role: body.role, amount })
      if (bond === undefined) {
        ;(trainer ? trainersSet(task.id) : validatorsSet(task.id)).add(state, tx.sender)
        writeTask(state, trainer ? { ...task, trainers: count + 1 } : { ...task, validators: count + 1 })
      }
      ctx.emit({
        type: 'arena.bonded',
        attributes: {
          task: String(task.id),
          did: tx.sender,
          role: body.role,
          amount: String(body.amount),
          bonded: String(amount),
        },
      })
    },
  }
}

const submitTx: TxHandler<SubmitBody> = {
  decodeBody: decodeSubmit,
  apply(state, tx, body, ctx) {
    const task = openTask(state, body.task)
    if (ctx.height > task.submitDeadline)
      refuse('submit-closed', `submissions to task ${task.id} closed at height ${task.submitDeadline}`)
    if (readBond(state, task.id, tx.sender)?.role !== 'trainer')
      refuse('not-bonded', `${tx.sender} has no trainer bond on task ${task.id}; bond first`)
    if (submissionOf(state, task.id, tx.sender) !== undefined)
      refuse('already-submitted', `${tx.sender} already submitted to task ${task.id}`)
    const index = task.submissions
    writeSubmission(state, task.id, {
      index,
      trainer: tx.sender,
      commitment: toHex(body.commitment),
      height: ctx.height,
    })
    state.write(submissionOfKey(task.id, tx.sender), index)
    writeTask(state, { ...task, submissions: index + 1 })
    ctx.emit({
      type: 'arena.submitted',
      attributes: { task: String(task.id), trainer: tx.sender, submission: String(index) },
    })
  },
}

const publishTx: TxHandler<PublishBody> = {
  decodeBody: decodePublish,
  apply(state, tx, body, ctx) {
    const task = openTask(state, body.task)
    if (ctx.height <= task.submitDeadline)
      refuse(
        'too-early',
        `publish weights after the submission deadline (${task.submitDeadline}), so none can be copied`,
      )
    if (ctx.height > task.publishDeadline)
      refuse('publish-closed', `publishing on task ${task.id} closed at height ${task.publishDeadline}`)
    const index = submissionOf(state, task.id, tx.sender)
    const sub = index === undefined ? undefined : readSubmission(state, task.id, index)
    if (sub === undefined) refuse('no-submission', `${tx.sender} committed no submission to task ${task.id}`)
    if (sub.weightsCid !== undefined) refuse('already-published', `submission ${sub.index} is published`)
    const digest = weightsDigest(body.weightsCid)
    if (toHex(submissionCommitment(digest, tx.sender, body.salt)) !== sub.commitment)
      refuse('commitment-mismatch', `${body.weightsCid} and this salt do not open submission ${sub.index}'s commitment`)
    writeSubmission(state, task.id, { ...sub, weightsCid: body.weightsCid, digest: toHex(digest), size: body.size })
    ctx.emit({
      type: 'arena.published',
      attributes: {
        task: String(task.id),
        trainer: tx.sender,
        submission: String(sub.index),
        weightsCid: body.weightsCid,
      },
    })
  },
}

// ---- the draw ---------------------------------------------------------------------------------------

function draw(state: StateOverlay, task: TaskRecord, ctx: BlockContext): void {
  const published = listSubmissions(state, task).flatMap((s) =>
    s.digest === undefined ? [] : [{ index: s.index, trainer: s.trainer, digest: s.digest }],
  )
  const copies = duplicatesOf(published)
  const record: DrawRecord = {
    seed: toHex(ctx.parentId),
    height: ctx.height,
    submissions: published.filter((s) => !copies.has(s.index)).map((s) => s.index),
    duplicates: [...copies].sort((a, b) => a[0] - b[0]),
    validators: validatorsSet(task.id).list(state).sort(),
  }
  state.write(drawKey(task.id), record)
  ctx.emit({
    type: 'arena.drawn',
    attributes: {
      task: String(task.id),
      seed: record.seed,
      submissions: record.submissions.join(','),
      duplicates: record.duplicates.map(([c, of]) => `${c}:${of}`).join(','),
      validators: String(record.validators.length),
    },
  })
}

/** The draw of `task`, refusing before it. */
function drawn(state: StateOverlay, task: TaskRecord): DrawRecord {
  const record = readDraw(state, task.id)
  if (record === undefined)
    refuse('too-early', `task ${task.id} draws its assignments at height ${task.publishDeadline + 1}`)
  return record
}

/** A validator's assignment in a draw. */
export function assignmentIn(record: DrawRecord, did: string) {
  return assignmentOf(fromHex(record.seed), record.submissions, record.validators, did)
}

// ---- scores ---------------------------------------------------------------------------------------

const commitScoresTx: TxHandler<CommitScoresBody> = {
  decodeBody: decodeCommitScores,
  apply(state, tx, body, ctx) {
    const task = openTask(state, body.task)
    const record = drawn(state, task)
    if (ctx.height > task.scoreDeadline)
      refuse('commit-closed', `score commitments on task ${task.id} closed at height ${task.scoreDeadline}`)
    if (!record.validators.includes(tx.sender))
      refuse('not-validator', `${tx.sender} was not a bonded validator of task ${task.id} at its draw`)
    if (record.submissions.length === 0) refuse('nothing-to-score', `task ${task.id} has no submission to score`)
    state.write(scoreCommitKey(task.id, tx.sender), body.commitment)
    ctx.emit({ type: 'arena.scoresCommitted', attributes: { task: String(task.id), validator: tx.sender } })
  },
}

const revealScoresTx: TxHandler<RevealScoresBody> = {
  decodeBody: decodeRevealScores,
  apply(state, tx, body, ctx) {
    const task = openTask(state, body.task)
    if (ctx.height <= task.scoreDeadline)
      refuse('too-early', `reveal scores after the commitment deadline (${task.scoreDeadline})`)
    if (ctx.height > task.revealDeadline)
      refuse('reveal-closed', `score reveals on task ${task.id} closed at height ${task.revealDeadline}`)
    const commitment = readScoreCommit(state, task.id, tx.sender)
    if (commitment === undefined) refuse('no-commitment', `${tx.sender} committed no scores to task ${task.id}`)
    if (readScoreReveal(state, task.id, tx.sender) !== undefined)
      refuse('already-revealed', `${tx.sender} already revealed its scores for task ${task.id}`)
    const expected = assignmentIn(drawn(state, task), tx.sender)
    const scores = canonicalScores(body.scores)
    const matches =
      scores.length === expected.length &&
      scores.every((s, i) => s.submission === expected[i]?.submission && s.set === expected[i]?.set)
    if (!matches)
      refuse(
        'bad-assignment',
        `score exactly your assignment: ${expected.map((a) => `${a.submission}:${a.set}`).join(', ')}`,
      )
    if (toHex(scoresCommitment(task.id, tx.sender, scores, body.salt)) !== toHex(commitment))
      refuse('commitment-mismatch', 'these scores and salt do not open your commitment')
    state.write(scoreRevealKey(task.id, tx.sender), scores)
    ctx.emit({
      type: 'arena.scoresRevealed',
      attributes: { task: String(task.id), validator: tx.sender, scores: String(scores.length) },
    })
  },
}

// ---- settlement ---------------------------------------------------------------------------------------

const slashOf = (amount: bigint, bps: number): bigint => (amount * BigInt(bps)) / BigInt(BPS)

function paid(emit: Emit, task: TaskRecord, did: string, role: string, amount: bigint): void {
  if (amount > 0n)
    emit({ type: 'arena.paid', attributes: { task: String(task.id), did, role, amount: String(amount) } })
}

function slashed(emit: Emit, task: TaskRecord, did: string, role: string, amount: bigint, reason: string): void {
  if (amount > 0n)
    emit({ type: 'arena.slashed', attributes: { task: String(task.id), did, role, amount: String(amount), reason } })
}

/** Registers the winner in the inference market, all or nothing; the reason when it cannot. */
function register(
  state: StateOverlay,
  task: TaskRecord,
  winner: SubmissionResult,
  contributors: string[],
  height: number,
): string | undefined {
  const base = task.baseModel.kind === 'model' ? modelByCid(state, task.baseModel.cid) : undefined
  if (task.price === undefined || base === undefined) return 'not-registrable'
  const scratch = state.fork()
  try {
    registerModelWithLineage(
      scratch,
      task.creator,
      {
        cid: winner.weightsCid,
        name: task.name,
        version: `arena-${task.id}`,
        price: task.price,
        kind: 'tensor',
        inputs: base.inputs,
        outputs: base.outputs,
        tolerance: base.tolerance,
        size: readSubmission(state, task.id, winner.index)?.size ?? 0,
      },
      height,
      task.deposit,
      {
        source: 'arena',
        task: String(task.id),
        round: 1,
        parent: base.cid,
        contributors: [
          { did: winner.trainer, role: 'trainer' },
          { did: task.creator, role: 'creator' },
          ...contributors.map((did) => ({ did, role: 'validator' })),
        ],
      },
    )
  } catch (err) {
    if (err instanceof TxError) return err.reason
    throw err
  }
  scratch.merge()
  return undefined
}

function scoreEntries(state: StateOverlay, task: TaskRecord, record: DrawRecord): ScoreEntry[] {
  return record.validators.flatMap((did) =>
    (readScoreReveal(state, task.id, did) ?? []).map((s) => ({
      validator: did,
      submission: s.submission,
      set: s.set,
      scorePpm: s.score,
    })),
  )
}

function settle(state: StateOverlay, task: TaskRecord, ctx: BlockContext, t: ArenaTunables): TaskResult {
  const record = readDraw(state, task.id) ?? { seed: '', height: 0, submissions: [], duplicates: [], validators: [] }
  const subs = listSubmissions(state, task)
  const published = subs.flatMap((s) =>
    s.digest === undefined ? [] : [{ index: s.index, trainer: s.trainer, digest: s.digest }],
  )
  const stakeOf = (did: string): bigint => readBond(state, task.id, did)?.amount ?? 0n
  const scoring = scoreTask({
    submissions: published,
    validators: record.validators.map((did) => ({
      did,
      stake: stakeOf(did),
      revealed: readScoreReveal(state, task.id, did) !== undefined,
    })),
    entries: scoreEntries(state, task, record),
    pool: task.pool,
    k1: task.k1,
    k2: task.k2,
    rules: t,
  })
  const outcome = new Map<number, SubmissionOutcome>(scoring.submissions.map((s) => [s.index, s]))
  const submissions = subs.map((s): SubmissionResult => {
    const o = outcome.get(s.index)
    const slash = o === undefined || o.status === 'lookup' ? slashOf(stakeOf(s.trainer), t.slashBps) : 0n
    return defined({
      index: s.index,
      trainer: s.trainer,
      weightsCid: s.weightsCid ?? '',
      status: o?.status ?? ('unpublished' as const),
      consensusPpm: o?.consensusPpm ?? 0,
      scorePpm: o?.scorePpm ?? 0,
      sets: o?.sets ?? {},
      rank: o?.rank ?? 0,
      payout: o?.payout ?? 0n,
      slashed: slash,
      duplicateOf: o?.duplicateOf,
    })
  })
  const assigned = record.submissions.length > 0
  const validators = scoring.validators.map((v): ValidatorResult => ({
    did: v.did,
    stake: v.stake,
    revealed: v.revealed,
    distancePpm: v.distancePpm,
    trustPpm: v.trustPpm,
    payout: v.payout,
    slashed: assigned && !v.revealed ? slashOf(v.stake, t.slashBps) : 0n,
  }))
  return {
    task: task.id,
    height: ctx.height,
    submissions,
    validators,
    trainerPool: scoring.trainerPool,
    validatorPool: scoring.validatorPool,
    refund: scoring.refund,
  }
}

/** Pays, returns bonds less slashes, refunds the creator, registers the winner; closes the task. */
function finish(state: StateOverlay, task: TaskRecord, ctx: BlockContext, t: ArenaTunables): void {
  const result = settle(state, task, ctx, t)
  let released = task.pool + task.deposit
  let burned = 0n
  const settleBond = (did: string, role: string, payout: bigint, slash: bigint, reason: string): void => {
    const bond = readBond(state, task.id, did)?.amount ?? 0n
    credit(state, did, payout + bond - slash)
    burned += slash
    paid(ctx.emit, task, did, role, payout)
    slashed(ctx.emit, task, did, role, slash, reason)
  }
  for (const s of result.submissions)
    settleBond(s.trainer, 'trainer', s.payout, s.slashed, s.status === 'lookup' ? 'lookup' : 'unpublished')
  for (const v of result.validators) settleBond(v.did, 'validator', v.payout, v.slashed, 'no-reveal')
  // bonded trainers that never submitted, validators bonded without a draw: their bonds return whole
  const settled = new Set([...result.submissions.map((s) => s.trainer), ...result.validators.map((v) => v.did)])
  for (const did of [...trainersSet(task.id).list(state), ...validatorsSet(task.id).list(state)].sort())
    if (!settled.has(did)) credit(state, did, readBond(state, task.id, did)?.amount ?? 0n)
  for (const did of [...trainersSet(task.id).list(state), ...validatorsSet(task.id).list(state)])
    released += readBond(state, task.id, did)?.amount ?? 0n
  if (burned > 0n) burn(state, burned)

  const best = result.submissions.find((s) => s.rank === 1)
  let deposit = task.deposit
  if (best !== undefined) {
    const reason =
      task.price === undefined
        ? 'no-price'
        : register(
            state,
            task,
            best,
            result.validators.filter((v) => v.payout > 0n).map((v) => v.did),
            ctx.height,
          )
    if (reason === undefined) deposit = 0n
    result.winner = defined({
      index: best.index,
      trainer: best.trainer,
      weightsCid: best.weightsCid,
      registered: reason === undefined,
      reason,
    })
    ctx.emit({
      type: reason === undefined ? 'arena.registered' : 'arena.notRegistered',
      attributes: {
        task: String(task.id),
        name: task.name,
        cid: best.weightsCid,
        version: `arena-${task.id}`,
        ...(reason === undefined ? {} : { reason }),
      },
    })
  }
  credit(state, task.creator, result.refund + deposit)
  addEscrow(state, -released)
  writeResult(state, result)
  writeTask(state, { ...task, status: 'settled' })
  OPEN.delete(state, String(task.id))
  ctx.emit({
    type: 'arena.settled',
    attributes: {
      task: String(task.id),
      winner: best === undefined ? '' : String(best.index),
      refund: String(result.refund),
      slashed: String(burned),
    },
  })
}

// ---- the module ---------------------------------------------------------------------------------------

function dueTasks(state: StateOverlay, set: ReturnType<typeof drawDue>): TaskRecord[] {
  const ids = set
    .list(state)
    .map(Number)
    .sort((a, b) => a - b)
  for (const id of ids) set.delete(state, String(id))
  return ids.flatMap((id) => {
    const task = readTask(state, id)
    return task !== undefined && task.status === 'open' ? [task] : []
  })
}

/** Creates the arena module (`tunables` override the defaults in constants.ts; tests use it). */
export function arenaModule(params: ChainParams, tunables: Partial<ArenaTunables> = {}): ChainModule {
  const t: ArenaTunables = { ...ARENA_DEFAULTS, ...tunables }
  return {
    name: 'arena',
    txs: {
      create: createTx(params, t),
      bond: bondTx(t),
      submit: submitTx,
      publish: publishTx,
      commitScores: commitScoresTx,
      revealScores: revealScoresTx,
    },
    beginBlock(state, ctx) {
      for (const task of dueTasks(state, drawDue(ctx.height))) draw(state, task, ctx)
    },
    endBlock(state, ctx) {
      for (const task of dueTasks(state, settleDue(ctx.height))) finish(state, task, ctx, t)
    },
    // an open task has deadlines by height (bonding, submission, scoring, settlement)
    wantsBlock: (state) => OPEN.size(state) > 0,
  }
}
