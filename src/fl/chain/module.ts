/**
 * fl: FLock's FL Alliance on chain (seed 003, issue 15 part 3) - federated rounds on a task's
 * consensus model. A task escrows a reward pool; participants escrow a bond and join; each round
 * splits them by a block hash into proposers, who train on data that never leaves their machine
 * and upload updates sealed to the round's voters, and voters, who aggregate the updates with the
 * task's rule, evaluate the aggregate and vote; the majority's aggregate becomes the global model.
 * Blobs live in the content store by CID (src/fl/blob.ts); the chain holds CIDs and digests only.
 * Money is bigint base units, accuracies ppm integers: no floating point touches state.
 *
 * Transactions (`fl.<kind>`, dag-cbor bodies decoded strictly by decode.ts):
 *
 *   create  The terms (TaskTerms in state.ts): name, the MLP's widths and input divisor, the
 *           initial global model (CID + digest), the aggregation rule and f (its condition -
 *           Krum n >= 2f + 3, Bulyan n >= 4f + 3, ... - checked on the round's proposer count,
 *           participants - voters: 'malformed' otherwise), rounds, upload and vote windows,
 *           join window, pool, bond, participants, voters, slash share. Refused 'pool-too-small'
 *           below the governed `fl.minRewardPool`, 'round-too-long' when upload + vote blocks pass
 *           the governed `fl.maxRoundBlocks`. The pool moves to the escrow (`spends`). The task
 *           id counts from 1. Emits `fl.created`. An optional `price` names a market entry
 *           (market.ts): the task's name becomes the model's; refused 'price-too-low' below the
 *           chain's `minModelPrice`, 'name-taken' when the name is another account's model; the
 *           market's `modelDeposit` moves to the escrow with the pool.
 *
 *   join    { task, bond }: the bond (= the task's: 'bad-bond') moves to the escrow. Only while
 *           the task is open ('not-open'), not yet full ('task-full') and its join window
 *           lasts ('join-closed'), once ('already-joined'). The join that fills the task schedules round 1 for the end of the
 *           next block. Emits `fl.joined`.
 *
 *   update  { task, round, cid, digest, bytes, samples }: a proposer's sealed update. Refused
 *           'unknown-task', 'not-running', 'wrong-round' (not the current round),
 *           'not-participant', 'not-proposer' (a voter, this round), 'upload-closed' (past the
 *           upload window), 'duplicate-update' (one per proposer per round), 'too-large' (over
 *           MAX_FL_BLOB_BYTES), 'duplicate-cid' (a blob already named on chain: a copied update).
 *           Emits `fl.update`.
 *
 *   vote    { task, round, approve, aggregate?, onnx?, accuracyPpm, excluded }: a voter's verdict;
 *           `onnx` { cid, bytes } names the ONNX export of its aggregate (src/fl/blob.ts
 *           `encodeOnnx`; 'malformed' without an aggregate), which the majority must agree on
 *           too (settlement.ts).
 *           Refused 'unknown-task', 'not-running', 'wrong-round', 'not-participant',
 *           'not-voter' (a proposer, this round), 'too-early' (the upload window is still open),
 *           'duplicate-vote', 'bad-excluded' (a DID that is not a proposer with an update on
 *           chain). Emits `fl.vote`.
 *
 * End of block, for the tasks due at that height: an open task that is full starts round 1; one
 * whose join window closed unfilled is cancelled (pool and bonds returned); a running task whose
 * vote window ends settles the round (settlement.ts: pay, slash, the next global model) and opens
 * the next round or finishes (remaining pool back to the creator, remaining bonds back to the
 * participants). A round opens at the end of block `start`: updates are taken in blocks
 * start+1 ... start+uploadBlocks, votes after that until start+uploadBlocks+voteBlocks, at the end
 * of which it settles. Slashed bond is burned. A finishing task with a price registers its
 * global model - the ONNX export its round's majority agreed on - in the inference market, all or
 * nothing (market.ts); a failure is recorded with its reason (`model` on the task) and the deposit
 * returns to the creator: it never fails the block. Events: `fl.round` (opened), `fl.settled`,
 * `fl.slashed`, `fl.registered` / `fl.notRegistered`, `fl.finished`, `fl.cancelled`.
 *
 * State layout: state.ts.
 */
import type { BlockContext, ChainEvent, ChainModule, TxHandler } from '../../chain/host.ts'
import type { ChainParams } from '../../chain/genesis.ts'
import type { StateOverlay, StateReader } from '../../chain/state-view.ts'
import { burn, credit, debit } from '../../bank/bank.ts'
import { toHex } from '../../core/bytes.ts'
import { governedUint } from '../../governance/params.ts'
import { governedDefault, TASK_POLICY } from '../../governance/registry.ts'
import { modelByName } from '../../inference/chain/state.ts'
import {
  MAX_FL_BLOB_BYTES,
  decodeCreate,
  decodeJoin,
  decodeUpdate,
  decodeVote,
  refuse,
  type CreateBody,
  type JoinBody,
  type UpdateBody,
  type VoteBody,
} from './decode.ts'
import { registerGlobalModel } from './market.ts'
import { roleSeed, settleRound, splitRoles } from './settlement.ts'
import {
  NEXT_KEY,
  addEscrow,
  dueSet,
  TASKS,
  listParticipants,
  listRounds,
  nameCid,
  nameOnnx,
  nextTaskId,
  participantsSet,
  readCid,
  readParticipant,
  readRound,
  readTask,
  readUpdate,
  readVote,
  roundUpdates,
  roundVotes,
  updateKey,
  voteKey,
  writeParticipant,
  writeRound,
  writeTask,
  type ParticipantRecord,
  type RoundRecord,
  type TaskRecord,
} from './state.ts'

export * from './state.ts'

type Emit = (event: ChainEvent) => void
/** What the module reads of the chain's parameters: the market's terms for a task's model. */
type MarketParams = Pick<ChainParams, 'minModelPrice' | 'modelDeposit'>

/** Smallest reward pool of a task, unless governance sets `fl.minRewardPool` (its default and bounds: src/governance/registry.ts). */
export const DEFAULT_MIN_REWARD_POOL = governedDefault(TASK_POLICY.flMinRewardPool)
/** Longest round (upload + vote blocks), unless governance sets `fl.maxRoundBlocks`. */
export const DEFAULT_MAX_ROUND_BLOCKS = governedDefault(TASK_POLICY.flMaxRoundBlocks)

function mustTask(state: StateOverlay, id: number): TaskRecord {
  const task = readTask(state, id)
  if (task === undefined) refuse('unknown-task', `no FL task ${id}`)
  return task
}

/** The current round of a running task, checked against the body's. */
function currentRound(state: StateOverlay, task: TaskRecord, round: number): RoundRecord {
  if (task.status !== 'running') refuse('not-running', `FL task ${task.id} is ${task.status}`)
  if (round !== task.round) refuse('wrong-round', `FL task ${task.id} is in round ${task.round}, not ${round}`)
  const record = readRound(state, task.id, round)
  if (record === undefined) refuse('wrong-round', `FL task ${task.id} has no round ${round}`)
  return record
}

function mustParticipant(state: StateOverlay, task: TaskRecord, did: string): ParticipantRecord {
  const p = readParticipant(state, task.id, did)
  if (p === undefined) refuse('not-participant', `${did} has not joined FL task ${task.id}`)
  return p
}

function reschedule(state: StateOverlay, task: TaskRecord, height: number): void {
  if (task.nextDue !== 0) dueSet(task.nextDue).delete(state, String(task.id))
  task.nextDue = height
  if (height !== 0) dueSet(height).add(state, String(task.id))
}

// ---- transactions ------------------------------------------------------------------------------

const createTx = (params: MarketParams): TxHandler<CreateBody> => ({
  decodeBody: decodeCreate,
  spends: (body) => body.pool + (body.price === undefined ? 0n : params.modelDeposit),
  apply(state, tx, body, ctx) {
    const minPool = governedUint(state, TASK_POLICY.flMinRewardPool, DEFAULT_MIN_REWARD_POOL)
    if (body.pool < minPool) refuse('pool-too-small', `the reward pool must be at least ${minPool}`)
    const maxRound = governedUint(state, TASK_POLICY.flMaxRoundBlocks, DEFAULT_MAX_ROUND_BLOCKS)
    if (BigInt(body.uploadBlocks + body.voteBlocks) > maxRound)
      refuse('round-too-long', `uploadBlocks + voteBlocks must be at most ${maxRound} (fl.maxRoundBlocks)`)
    if (body.price !== undefined && body.price < params.minModelPrice)
      refuse('price-too-low', `price ${body.price} is below the market's minimum ${params.minModelPrice}`)
    // the name is checked again when the model is registered (it may be taken meanwhile)
    const owner = body.price === undefined ? undefined : modelByName(state, body.name)?.owner
    if (owner !== undefined && owner !== tx.sender)
      refuse('name-taken', `the model name ${body.name} belongs to ${owner}`)
    const deposit = body.price === undefined ? 0n : params.modelDeposit
    const id = nextTaskId(state)
    debit(state, tx.sender, body.pool + deposit)
    addEscrow(state, body.pool + deposit)
    const task: TaskRecord = {
      ...body,
      id,
      creator: tx.sender,
      createdAt: ctx.height,
      status: 'open',
      round: 0,
      global: body.initial,
      remaining: body.pool,
      joined: 0,
      paid: 0n,
      slashed: 0n,
      nextDue: 0,
      deposit,
      globalRound: 0,
    }
    reschedule(state, task, ctx.height + body.joinBlocks)
    writeTask(state, task)
    state.write(NEXT_KEY, id + 1)
    nameCid(state, body.initial.cid, { task: id, round: 0, kind: 'initial', did: tx.sender, bytes: 0 })
    ctx.emit({
      type: 'fl.created',
      attributes: {
        task: String(id),
        name: body.name,
        creator: tx.sender,
        rule: body.rule,
        rounds: String(body.rounds),
        pool: String(body.pool),
        ...(body.price === undefined ? {} : { price: String(body.price), deposit: String(deposit) }),
      },
    })
  },
})

const joinTx: TxHandler<JoinBody> = {
  decodeBody: decodeJoin,
  spends: (body) => body.bond,
  apply(state, tx, body, ctx) {
    const task = mustTask(state, body.task)
    if (task.status !== 'open')
      refuse('not-open', `FL task ${task.id} is ${task.status}; it takes no more participants`)
    if (ctx.height > task.createdAt + task.joinBlocks)
      refuse('join-closed', `FL task ${task.id}'s join window closed at height ${task.createdAt + task.joinBlocks}`)
    if (task.joined >= task.participants)
      refuse('task-full', `FL task ${task.id} has its ${task.participants} participants; round 1 is about to open`)
    if (body.bond !== task.bond) refuse('bad-bond', `FL task ${task.id} asks a bond of ${task.bond}, not ${body.bond}`)
    if (readParticipant(state, task.id, tx.sender) !== undefined)
      refuse('already-joined', `${tx.sender} already joined FL task ${task.id}`)
    debit(state, tx.sender, task.bond)
    addEscrow(state, task.bond)
    writeParticipant(state, task.id, {
      did: tx.sender,
      bond: task.bond,
      joinedAt: ctx.height,
      paid: 0n,
      slashed: 0n,
      returned: 0n,
      proposed: 0,
      voted: 0,
      excluded: 0,
    })
    task.joined += 1
    // full: round 1 opens at the end of the next block, whose parent id nobody knew when joining
    if (task.joined === task.participants) reschedule(state, task, ctx.height + 1)
    writeTask(state, task)
    ctx.emit({
      type: 'fl.joined',
      attributes: { task: String(task.id), did: tx.sender, joined: String(task.joined) },
    })
  },
}

const updateTx: TxHandler<UpdateBody> = {
  decodeBody: decodeUpdate,
  apply(state, tx, body, ctx) {
    const task = mustTask(state, body.task)
    const round = currentRound(state, task, body.round)
    const participant = mustParticipant(state, task, tx.sender)
    if (!round.proposers.includes(tx.sender))
      refuse('not-proposer', `${tx.sender} is a voter of round ${round.round}, not a proposer`)
    if (ctx.height > round.uploadEnd)
      refuse('upload-closed', `round ${round.round}'s upload window closed at height ${round.uploadEnd}`)
    if (readUpdate(state, task.id, round.round, tx.sender) !== undefined)
      refuse('duplicate-update', `${tx.sender} already uploaded an update in round ${round.round}`)
    if (body.bytes > MAX_FL_BLOB_BYTES)
      refuse('too-large', `an update blob is at most ${MAX_FL_BLOB_BYTES} bytes, not ${body.bytes}`)
    if (readCid(state, body.cid) !== undefined)
      refuse('duplicate-cid', `blob ${body.cid} is already named on chain; upload your own update`)
    state.write(updateKey(task.id, round.round, tx.sender), {
      did: tx.sender,
      cid: body.cid,
      digest: body.digest,
      bytes: body.bytes,
      samples: body.samples,
      height: ctx.height,
    })
    nameCid(state, body.cid, { task: task.id, round: round.round, kind: 'update', did: tx.sender, bytes: body.bytes })
    writeRound(state, { ...round, updates: round.updates + 1 })
    writeParticipant(state, task.id, { ...participant, proposed: participant.proposed + 1 })
    ctx.emit({
      type: 'fl.update',
      attributes: { task: String(task.id), round: String(round.round), did: tx.sender, cid: body.cid },
    })
  },
}

const voteTx: TxHandler<VoteBody> = {
  decodeBody: decodeVote,
  apply(state, tx, body, ctx) {
    const task = mustTask(state, body.task)
    const round = currentRound(state, task, body.round)
    const participant = mustParticipant(state, task, tx.sender)
    if (!round.voters.includes(tx.sender))
      refuse('not-voter', `${tx.sender} is a proposer of round ${round.round}; only its voters vote`)
    if (ctx.height <= round.uploadEnd)
      refuse('too-early', `round ${round.round}'s votes open after height ${round.uploadEnd}`)
    if (readVote(state, task.id, round.round, tx.sender) !== undefined)
      refuse('duplicate-vote', `${tx.sender} already voted in round ${round.round}`)
    for (const did of body.excluded)
      if (!round.proposers.includes(did) || readUpdate(state, task.id, round.round, did) === undefined)
        refuse('bad-excluded', `${did} is not a proposer with an update in round ${round.round}`)
    // in the round's proposer order, so equal exclusions compare equal
    const excluded = round.proposers.filter((did) => body.excluded.includes(did))
    state.write(voteKey(task.id, round.round, tx.sender), {
      did: tx.sender,
      approve: body.approve,
      ...(body.aggregate === undefined ? {} : { aggregate: body.aggregate }),
      ...(body.onnx === undefined ? {} : { onnx: body.onnx }),
      accuracyPpm: body.accuracyPpm,
      excluded,
      height: ctx.height,
    })
    // its own namespace: whatever else names this CID, the vote stands (settlement compares ONNX CIDs)
    if (body.onnx !== undefined) nameOnnx(state, body.onnx.cid, { task: task.id, round: round.round, did: tx.sender })
    if (body.aggregate !== undefined)
      nameCid(state, body.aggregate.cid, {
        task: task.id,
        round: round.round,
        kind: 'aggregate',
        did: tx.sender,
        bytes: 0,
      })
    writeRound(state, { ...round, votes: round.votes + 1 })
    writeParticipant(state, task.id, { ...participant, voted: participant.voted + 1 })
    ctx.emit({
      type: 'fl.vote',
      attributes: {
        task: String(task.id),
        round: String(round.round),
        did: tx.sender,
        approve: String(body.approve),
        digest: body.aggregate?.digest ?? '',
        onnx: body.onnx?.cid ?? '',
        accuracyPpm: String(body.accuracyPpm),
      },
    })
  },
}

// ---- end of block: start, settle, finish, cancel -------------------------------------------------

function openRound(state: StateOverlay, task: TaskRecord, round: number, ctx: BlockContext): void {
  const seed = roleSeed(task.id, round, ctx.parentId)
  const roles = splitRoles(seed, participantsSet(task.id).list(state), task.voters)
  const uploadEnd = ctx.height + task.uploadBlocks
  const record: RoundRecord = {
    task: task.id,
    round,
    start: ctx.height,
    uploadEnd,
    voteEnd: uploadEnd + task.voteBlocks,
    seed: toHex(seed),
    proposers: roles.proposers,
    voters: roles.voters,
    base: task.global,
    status: 'open',
    updates: 0,
    votes: 0,
  }
  writeRound(state, record)
  task.status = 'running'
  task.round = round
  reschedule(state, task, record.voteEnd)
  ctx.emit({
    type: 'fl.round',
    attributes: {
      task: String(task.id),
      round: String(round),
      voters: roles.voters.join(','),
      proposers: String(roles.proposers.length),
      uploadEnd: String(uploadEnd),
      voteEnd: String(record.voteEnd),
    },
  })
}

function settle(state: StateOverlay, task: TaskRecord, round: RoundRecord, emit: Emit): void {
  const participants = new Map(listParticipants(state, task.id).map((p) => [p.did, p]))
  const outcome = settleRound({
    pool: task.remaining,
    roundsLeft: task.rounds - round.round + 1,
    proposers: round.proposers,
    voters: round.voters,
    uploaded: new Set(roundUpdates(state, round).map((u) => u.did)),
    votes: roundVotes(state, round),
    bonds: new Map([...participants].map(([did, p]) => [did, p.bond])),
    slashPpm: task.slashPpm,
  })
  let paid = 0n
  for (const payout of outcome.payouts) {
    const p = participants.get(payout.did) as ParticipantRecord
    credit(state, payout.did, payout.amount)
    p.paid += payout.amount
    paid += payout.amount
  }
  let slashed = 0n
  for (const slash of outcome.slashes) {
    const p = participants.get(slash.did) as ParticipantRecord
    p.bond -= slash.amount
    p.slashed += slash.amount
    slashed += slash.amount
    emit({
      type: 'fl.slashed',
      attributes: {
        task: String(task.id),
        round: String(round.round),
        did: slash.did,
        amount: String(slash.amount),
        reason: slash.reason,
      },
    })
  }
  for (const did of outcome.excluded) (participants.get(did) as ParticipantRecord).excluded += 1
  for (const p of participants.values()) writeParticipant(state, task.id, p)
  // payouts leave the escrow to accounts; slashes leave it and the supply
  addEscrow(state, -(paid + slashed))
  if (slashed > 0n) burn(state, slashed)
  task.remaining = outcome.poolAfter
  task.paid += paid
  task.slashed += slashed
  if (outcome.aggregate !== undefined) {
    task.global = outcome.aggregate
    task.globalRound = round.round
    // the market serves the ONNX export the majority agreed on, or none when it named none
    if (outcome.onnx === undefined) delete task.onnx
    else task.onnx = outcome.onnx
  }
  writeRound(state, {
    ...round,
    status: outcome.passed ? 'passed' : 'failed',
    ...(outcome.aggregate === undefined ? {} : { aggregate: outcome.aggregate }),
    ...(outcome.onnx === undefined ? {} : { onnx: outcome.onnx }),
    ...(outcome.accuracyPpm === undefined ? {} : { accuracyPpm: outcome.accuracyPpm }),
    majority: outcome.majority,
    excluded: outcome.excluded,
    pay: outcome.pay,
    payouts: outcome.payouts,
    slashes: outcome.slashes,
  })
  emit({
    type: 'fl.settled',
    attributes: {
      task: String(task.id),
      round: String(round.round),
      status: outcome.passed ? 'passed' : 'failed',
      digest: outcome.aggregate?.digest ?? '',
      onnx: outcome.onnx?.cid ?? '',
      accuracyPpm: String(outcome.accuracyPpm ?? 0),
      paid: String(paid),
      slashed: String(slashed),
      excluded: outcome.excluded.join(','),
    },
  })
}

/** A finished task with a price: its global model into the market (market.ts), or the reason why not. */
function register(state: StateOverlay, task: TaskRecord, height: number, emit: Emit): boolean {
  const outcome = registerGlobalModel(state, task, listParticipants(state, task.id), listRounds(state, task), height)
  task.model = outcome
  emit({
    type: outcome.registered ? 'fl.registered' : 'fl.notRegistered',
    attributes: {
      task: String(task.id),
      name: outcome.name,
      version: outcome.version,
      cid: outcome.cid,
      round: String(outcome.round),
      ...(outcome.reason === undefined ? {} : { reason: outcome.reason }),
    },
  })
  return outcome.registered
}

/**
 * Returns the pool's remainder to the creator and the bonds to the participants; a finished task
 * with a price registers its global model first (its deposit stays with the model, else it
 * returns to the creator).
 */
function close(
  state: StateOverlay,
  task: TaskRecord,
  status: 'finished' | 'cancelled',
  ctx: Pick<BlockContext, 'height' | 'emit'>,
): void {
  const emit = ctx.emit
  const registered = status === 'finished' && task.price !== undefined && register(state, task, ctx.height, emit)
  let returned = 0n
  for (const p of listParticipants(state, task.id)) {
    credit(state, p.did, p.bond)
    returned += p.bond
    writeParticipant(state, task.id, { ...p, returned: p.returned + p.bond, bond: 0n })
  }
  // a registered model holds its deposit in its registry record (as a registerModel's does)
  credit(state, task.creator, task.remaining + (registered ? 0n : task.deposit))
  addEscrow(state, -(returned + task.remaining + task.deposit))
  const refunded = task.remaining
  task.remaining = 0n
  task.status = status
  reschedule(state, task, 0)
  emit({
    type: status === 'finished' ? 'fl.finished' : 'fl.cancelled',
    attributes: {
      task: String(task.id),
      global: task.global.digest,
      refunded: String(refunded),
      bondsReturned: String(returned),
    },
  })
}

function step(state: StateOverlay, task: TaskRecord, ctx: BlockContext): void {
  if (task.status === 'open') {
    if (task.joined === task.participants) openRound(state, task, 1, ctx)
    else if (ctx.height >= task.createdAt + task.joinBlocks) close(state, task, 'cancelled', ctx)
    return
  }
  if (task.status !== 'running') return
  const round = readRound(state, task.id, task.round)
  if (round === undefined || ctx.height !== round.voteEnd) return
  settle(state, task, round, ctx.emit)
  if (task.round < task.rounds) openRound(state, task, task.round + 1, ctx)
  else close(state, task, 'finished', ctx)
}

/** Creates the fl module (its policy comes from governed parameters; the market's terms from ChainParams). */
export function flModule(params: ChainParams): ChainModule {
  return {
    name: 'fl',
    txs: { create: createTx(params), join: joinTx, update: updateTx, vote: voteTx },
    endBlock(state, ctx) {
      const due = dueSet(ctx.height)
      const ids = due
        .list(state)
        .map(Number)
        .sort((a, b) => a - b)
      for (const id of ids) {
        due.delete(state, String(id))
        const task = readTask(state, id)
        if (task === undefined) continue
        if (task.nextDue === ctx.height) task.nextDue = 0
        step(state, task, ctx)
        writeTask(state, task)
      }
    },
    wantsBlock: hasOpenTask,
  }
}

/** Tasks looked at by `wantsBlock`, newest first. */
const OPEN_SCAN = 64

/** An open task has its join window, a running one its rounds, by height. */
function hasOpenTask(state: StateReader): boolean {
  const n = TASKS.size(state)
  return TASKS.page(state, Math.max(0, n - OPEN_SCAN), OPEN_SCAN).some((id) => {
    const status = readTask(state, Number(id))?.status
    return status === 'open' || status === 'running'
  })
}
