/**
 * experts: AI-Block's chain module (seed 001 §3, §6, §8.1, §8.2, §10.4) - Mixture-of-Experts
 * models kept as a parameter DAG on chain. A family's MetaBlocks (architecture, router rules,
 * tokenizer, trunk weights, public validation set) form a linear history; its parameter blocks
 * (one router or one expert of one layer each, weights in the content store by CID) form a DAG
 * through `dependsOn`. The ParamIndex maps each slot of a version (`layer{L}.router`,
 * `layer{L}.expert{J}`) to the block it currently uses. Money is bigint base units; scores are
 * micro-nats and ppm; no floating point touches state or rewards.
 *
 * Transactions (`experts.<kind>`, bodies are dag-cbor maps, decoded strictly by decode.ts):
 *
 *   meta     A MetaBlock. Version 1 creates a family owned by the sender ('family-exists' if
 *            taken); version n+1 only by the owner ('not-owner') and only latest + 1
 *            ('bad-version'). `carry` names blocks of the previous version's ParamIndex
 *            ('bad-carry' otherwise) whose shapes fit the new architecture ('carry-shapes'
 *            otherwise); they fill the same slots in the new version. A new version is a fork:
 *            proposals are for the latest version only. Emits `experts.meta`.
 *
 *   propose  1-64 parameter blocks and the miner's claimed score of the model with them in place.
 *            Checked in this order, each failure included as failed with its reason (the fee is
 *            kept, nothing else written): 'too-many-blocks', 'unknown-family', 'unknown-version'
 *            (not the latest), 'bad-index' (the family's next indices, in order), 'bad-name'
 *            (name <-> type <-> layer, inside the architecture, one block per slot),
 *            'unknown-dependency' (a `#<index>` naming no sibling, or a hash that is neither a
 *            MetaBlock nor an accepted block), 'foreign-dependency' (another family's block or
 *            MetaBlock), 'cycle' (among the siblings; the members are named),
 *            'missing-meta-dependency', 'missing-router-dependency' (an expert depends on its
 *            layer's current router or a router of that layer in the proposal), 'shapes'
 *            (!= payloadShapes(arch, type)), 'bad-signature' (payloadSig by header.miner),
 *            'insufficient-work' (powDigest has fewer than `polDifficultyBits` leading zero
 *            bits), 'duplicate-payload' (a payload CID already pending or accepted). Then the
 *            bond `polBond` moves from the sender to the escrow (`spends`, so the mempool counts
 *            it), the blocks are recorded as pending (DAG order in `topo/`), and the proposal
 *            (id = hex of the transaction hash) waits `polWindowBlocks` blocks for attestations,
 *            remembering what each slot held (`replaces`). Emits `experts.proposed`.
 *
 *   attest   A current validator's (ctx.validators) reproduction of a pending proposal: the
 *            score of the model with its blocks and the baseline (the current ParamIndex), or a
 *            fault (payload missing or unlike its header). Once per validator per proposal
 *            ('not-validator', 'already-attested', 'unknown-proposal', 'not-pending'). When the
 *            attesters hold more than 2/3 of the voting power the proposal is decided at once,
 *            with stake-weighted (lower) medians:
 *              faults from more than 2/3 of the attesting power  -> refused 'bad-payload', bond kept
 *              |claim - median| past polToleranceMicroNats or
 *                polAccuracyTolerancePpm                         -> refused 'forged-score', bond kept
 *              a slot it replaces changed since it was proposed  -> refused 'stale', bond returned
 *              it replaces a block and baseline - median loss
 *                < polMinGainMicroNats (the seed's delta)            -> refused 'no-improvement', bond kept
 *              else accepted: bond returned, blocks accepted with the median score, ParamIndex
 *              and slot history updated, the family's score set.
 *            A kept bond goes to the experts pool. Emits `experts.attested`, then
 *            `experts.accepted` or `experts.refused` { id, reason, status }.
 *
 *   usage    A gateway's routing counts for accepted blocks of a family version ('unknown-block'
 *            otherwise): at most 256 entries of at most 1e6 calls. The sender pays
 *            calls × `expertCallPrice` into the pool (`spends`). Updates each block's usage
 *            (all-time and epoch calls, epoch latency, last use) and the family's. Emits
 *            `experts.usage`.
 *
 * End of block: pending proposals whose deadline is this height expire (bond returned,
 * `experts.refused` with status 'expired'); at epoch edges (height % epochLength = 0) the pool
 * is paid to the miners of the blocks used this epoch, pro rata to seed 10.4's weight
 * (rewards.ts), and the epoch counters reset (`experts.reward`). Nothing is minted: the pool
 * and the escrow hold tokens taken from accounts, counted in the supply.
 *
 * Genesis (`genesis.experts`): MetaBlocks in order, then blocks accepted directly with their
 * score - the same checks as a proposal but for bond and proof of work (signatures must verify).
 *
 * Washed usage: usage is what gateways report and pay for. Calls a miner reports of its own
 * blocks are recorded (all-time calls, rankings) and paid for, but do not weigh in the epoch's
 * rewards (test/attacks/experts-chain.test.ts). Known limit: a miner reporting through a second
 * key still pays the call price into the pool it is rewarded from, so this only moves the pool
 * (other miners' shares and kept bonds) towards it in proportion to what it pays, and each
 * block's usage factor is capped at 2.0 (200 calls an epoch).
 *
 * State layout: state.ts.
 */
import { GenesisError, TxError } from '../../chain/errors.ts'
import type { ChainEvent, ChainModule, TxContext, TxHandler } from '../../chain/host.ts'
import type { ChainParams, GenesisDoc } from '../../chain/genesis.ts'
import type { StateOverlay } from '../../chain/state-view.ts'
import { credit, debit } from '../../bank/bank.ts'
import { toHex } from '../../core/bytes.ts'
import { blockHash, metaHash, verifyPayloadSig } from '../block.ts'
import { meetsDifficulty, powDigest } from '../pow.ts'
import { resolveRefs, topoOrder } from '../dag.ts'
import {
  parseExpertName,
  payloadShapes,
  routerName,
  type AttestBody,
  type MetaBlockBody,
  type MetaRecord,
  type ParamBlockHeader,
  type PolScore,
  type ProposalRecord,
  type ProposeBody,
  type UsageBody,
} from '../types.ts'
import {
  MAX_PROPOSAL_BLOCKS,
  decodeAttest,
  decodeHeader,
  decodeMeta,
  decodePropose,
  decodeUsage,
  refuse,
} from './decode.ts'
import { payExpertRewards } from './rewards.ts'
import {
  ESCROW_KEY,
  PENDING,
  USED,
  addToPool,
  appendHistory,
  attestations,
  attestersSet,
  attestKey,
  carriedKey,
  defined,
  dueSet,
  escrowBalance,
  indexEntry,
  isCarried,
  logProposal,
  metaByHash,
  metaHashKey,
  metaKey,
  newUsage,
  payloadKey,
  readBlock,
  readFamily,
  readMeta,
  readProposal,
  readUsage,
  setIndexEntry,
  topoKey,
  writeAmount,
  writeBlock,
  writeFamily,
  writeProposal,
  writeUsage,
  type ExpertsParams,
  type FamilyRecord,
} from './state.ts'

export * from './state.ts'

type Emit = (event: ChainEvent) => void

function sameShapes(a: Record<string, number[]>, b: Record<string, number[]>): boolean {
  const ka = Object.keys(a).sort()
  const kb = Object.keys(b).sort()
  if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false
  return ka.every((k) => {
    const da = a[k] ?? []
    const db = b[k] ?? []
    return da.length === db.length && da.every((d, i) => d === db[i])
  })
}

// ---- meta --------------------------------------------------------------------------------------

/** Records a MetaBlock (and what it carries) after the ownership, version and carry checks. */
export function applyMeta(
  state: StateOverlay,
  owner: string,
  body: MetaBlockBody,
  height: number,
  emit: Emit,
): MetaRecord {
  const family = readFamily(state, body.family)
  if (body.version === 1) {
    if (family !== undefined) refuse('family-exists', `family ${body.family} exists (owned by ${family.owner})`)
    if (body.carry.length > 0) refuse('bad-carry', 'version 1 has no previous version to carry blocks from')
  } else {
    if (family === undefined) refuse('unknown-family', `family ${body.family} does not exist (start at version 1)`)
    if (family.owner !== owner) refuse('not-owner', `only ${family.owner} may publish versions of ${body.family}`)
    if (body.version !== family.latest + 1)
      refuse('bad-version', `the next version of ${body.family} is ${family.latest + 1}, not ${body.version}`)
  }
  const carried: Array<{ name: string; hash: string }> = []
  for (const hash of body.carry) {
    const block = readBlock(state, hash)
    const previous = body.version - 1
    if (block === undefined || indexEntry(state, body.family, previous, block.header.expertName) !== hash)
      refuse('bad-carry', `${hash} is not in the ParamIndex of ${body.family} v${previous}`)
    const { header } = block
    const parsed = parseExpertName(header.expertName)
    const fits =
      parsed !== undefined &&
      parsed.layer < body.arch.nLayers &&
      (parsed.expert === null || parsed.expert < body.arch.expertsPerLayer) &&
      sameShapes(header.shapes, payloadShapes(body.arch, header.blockType))
    if (!fits)
      refuse('carry-shapes', `${header.expertName} (${hash}) does not fit the architecture of v${body.version}`)
    carried.push({ name: header.expertName, hash })
  }
  const hash = metaHash(body)
  const record: MetaRecord = { ...body, hash, owner, height }
  state.write(metaKey(body.family, body.version), record)
  state.write(metaHashKey(hash), { family: body.family, version: body.version })
  writeFamily(
    state,
    family === undefined
      ? {
          family: body.family,
          owner,
          latest: 1,
          nextIndex: 0,
          topoCount: 0,
          createdAt: height,
          calls: 0n,
          epochCalls: 0n,
          generations: 0n,
        }
      : { ...family, latest: body.version },
  )
  for (const c of carried) {
    setIndexEntry(state, body.family, body.version, c.name, c.hash)
    state.write(carriedKey(body.family, body.version, c.hash), true)
  }
  emit({
    type: 'experts.meta',
    attributes: { family: body.family, version: String(body.version), hash, owner, carried: String(carried.length) },
  })
  return record
}

const metaTx: TxHandler<MetaBlockBody> = {
  decodeBody: decodeMeta,
  apply(state, tx, body, ctx) {
    applyMeta(state, tx.sender, body, ctx.height, ctx.emit)
  },
}

// ---- block checks (propose and genesis) -----------------------------------------------------------

export interface CheckedBlocks {
  hashes: string[]
  /** Positions in topological order (dependencies first). */
  order: number[]
  /** Slot -> the hash it holds now ('' when empty). */
  replaces: Record<string, string>
}

/**
 * The structural checks of a proposal's blocks (see the file comment for the reasons, in order).
 * `powBits` undefined skips the proof of work (genesis).
 */
export function checkBlocks(
  state: StateOverlay,
  family: FamilyRecord,
  meta: MetaRecord,
  blocks: readonly ParamBlockHeader[],
  powBits: number | undefined,
): CheckedBlocks {
  const { arch } = meta
  const name = family.family
  blocks.forEach((b, i) => {
    if (b.index !== family.nextIndex + i)
      refuse('bad-index', `block ${i} has index ${b.index}; ${name}'s next index here is ${family.nextIndex + i}`)
  })
  const slots = new Set<string>()
  for (const b of blocks) {
    const parsed = parseExpertName(b.expertName)
    const ok =
      parsed !== undefined &&
      (parsed.expert === null) === (b.blockType === 'router') &&
      parsed.layer === b.layerId &&
      parsed.layer < arch.nLayers &&
      (parsed.expert === null || parsed.expert < arch.expertsPerLayer)
    if (!ok)
      refuse(
        'bad-name',
        `${JSON.stringify(b.expertName)} (${b.blockType}, layer ${b.layerId}) is not a slot of ${name} v${meta.version}`,
      )
    if (slots.has(b.expertName)) refuse('bad-name', `the proposal fills ${b.expertName} twice`)
    slots.add(b.expertName)
  }
  const deps = resolveRefs(blocks)
  const first = deps.unresolved[0]
  if (first !== undefined) refuse('unknown-dependency', `block ${first[0]}: ${first[1]} names no block of the proposal`)
  deps.external.forEach((list, i) => {
    for (const dep of list) {
      const m = metaByHash(state, dep)
      if (m !== undefined) {
        if (m.family !== name)
          refuse('foreign-dependency', `block ${i} depends on ${dep}, a MetaBlock of family ${m.family}`)
        continue
      }
      const block = readBlock(state, dep)
      if (block === undefined) refuse('unknown-dependency', `block ${i} depends on ${dep}, which is not on chain`)
      if (block.header.chainId !== name)
        refuse('foreign-dependency', `block ${i} depends on ${dep}, a block of family ${block.header.chainId}`)
      if (block.status !== 'accepted')
        refuse('unknown-dependency', `block ${i} depends on ${dep}, which is ${block.status}, not accepted`)
    }
  })
  const topo = topoOrder(deps.internal)
  if ('cycle' in topo)
    refuse(
      'cycle',
      `the proposal's dependencies form a cycle: ${topo.cycle.map((p) => `#${blocks[p]?.index ?? p}`).join(' \u2192 ')}`,
    )
  blocks.forEach((b, i) => {
    if (!(deps.external[i] ?? []).includes(meta.hash))
      refuse('missing-meta-dependency', `block ${i} (${b.expertName}) does not depend on its MetaBlock ${meta.hash}`)
  })
  blocks.forEach((b, i) => {
    if (b.blockType !== 'expert') return
    const current = indexEntry(state, name, meta.version, routerName(b.layerId))
    const onChain = current !== undefined && (deps.external[i] ?? []).includes(current)
    const sibling = (deps.internal[i] ?? []).some((p) => blocks[p]?.expertName === routerName(b.layerId))
    if (!onChain && !sibling)
      refuse(
        'missing-router-dependency',
        `block ${i} (${b.expertName}) must depend on ${routerName(b.layerId)} (${current ?? 'none on chain'})`,
      )
  })
  blocks.forEach((b, i) => {
    if (!sameShapes(b.shapes, payloadShapes(arch, b.blockType)))
      refuse('shapes', `block ${i} (${b.expertName}) declares shapes unlike its MetaBlock's ${b.blockType} payload`)
  })
  blocks.forEach((b, i) => {
    if (!verifyPayloadSig(b)) refuse('bad-signature', `block ${i}'s payloadSig is not ${b.miner}'s`)
  })
  if (powBits !== undefined)
    blocks.forEach((b, i) => {
      if (!meetsDifficulty(powDigest(b), powBits))
        refuse('insufficient-work', `block ${i}'s proof of work has fewer than ${powBits} leading zero bits`)
    })
  const payloads = new Set<string>()
  const hashes = blocks.map((b, i) => {
    if (payloads.has(b.payloadHash) || state.read<string>(payloadKey(b.payloadHash)) !== undefined)
      refuse('duplicate-payload', `block ${i}'s payload ${b.payloadHash} is already proposed or accepted`)
    payloads.add(b.payloadHash)
    const hash = blockHash(b)
    if (readBlock(state, hash) !== undefined) refuse('duplicate-payload', `block ${i} (${hash}) is already on chain`)
    return hash
  })
  const replaces: Record<string, string> = {}
  for (const b of blocks) replaces[b.expertName] = indexEntry(state, name, meta.version, b.expertName) ?? ''
  return { hashes, order: topo.order, replaces }
}

// ---- propose ---------------------------------------------------------------------------------------

function proposeTx(params: ExpertsParams): TxHandler<ProposeBody> {
  return {
    decodeBody: decodePropose,
    spends: () => params.polBond,
    apply(state, tx, body, ctx) {
      if (body.blocks.length > MAX_PROPOSAL_BLOCKS)
        refuse('too-many-blocks', `a proposal carries at most ${MAX_PROPOSAL_BLOCKS} blocks, not ${body.blocks.length}`)
      const family = readFamily(state, body.family)
      if (family === undefined) refuse('unknown-family', `family ${body.family} does not exist`)
      if (body.version !== family.latest)
        refuse('unknown-version', `proposals are for ${body.family} v${family.latest}, not v${body.version}`)
      const meta = readMeta(state, body.family, body.version) as MetaRecord
      const checked = checkBlocks(state, family, meta, body.blocks, params.polDifficultyBits)
      const id = toHex(ctx.txHash)
      if (readProposal(state, id) !== undefined) refuse('duplicate-proposal', `proposal ${id} exists`)
      debit(state, tx.sender, params.polBond)
      writeAmount(state, ESCROW_KEY, escrowBalance(state) + params.polBond)
      checked.order.forEach((p, k) => {
        const header = body.blocks[p] as ParamBlockHeader
        const hash = checked.hashes[p] as string
        writeBlock(state, { hash, header, proposal: id, height: ctx.height, status: 'pending' })
        state.write(payloadKey(header.payloadHash), hash)
        state.write(topoKey(body.family, family.topoCount + k), hash)
      })
      writeFamily(state, {
        ...family,
        nextIndex: family.nextIndex + body.blocks.length,
        topoCount: family.topoCount + body.blocks.length,
      })
      const deadline = ctx.height + params.polWindowBlocks
      writeProposal(state, {
        id,
        family: body.family,
        version: body.version,
        proposer: tx.sender,
        blocks: checked.hashes,
        replaces: checked.replaces,
        claim: body.claim,
        bond: params.polBond,
        height: ctx.height,
        deadline,
        status: 'pending',
        reason: '',
      })
      PENDING.add(state, id)
      dueSet(deadline).add(state, id)
      logProposal(state, id)
      ctx.emit({
        type: 'experts.proposed',
        attributes: {
          id,
          family: body.family,
          version: String(body.version),
          proposer: tx.sender,
          blocks: checked.hashes.join(','),
          deadline: String(deadline),
        },
      })
    },
  }
}

// ---- attest and decide ------------------------------------------------------------------------------

/** The lower stake-weighted median of `values` (undefined when empty). */
export function weightedMedian(values: ReadonlyArray<{ value: bigint; weight: bigint }>): bigint | undefined {
  const sorted = [...values].sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0))
  const total = sorted.reduce((s, v) => s + v.weight, 0n)
  if (sorted.length === 0) return undefined
  let cum = 0n
  for (const v of sorted) {
    cum += v.weight
    if (cum * 2n >= total) return v.value
  }
  return sorted[sorted.length - 1]?.value
}

function medianScore(entries: ReadonlyArray<{ score: PolScore; weight: bigint }>): PolScore | undefined {
  const loss = weightedMedian(entries.map((e) => ({ value: e.score.lossMicroNats, weight: e.weight })))
  const acc = weightedMedian(entries.map((e) => ({ value: BigInt(e.score.accuracyPpm), weight: e.weight })))
  return loss === undefined || acc === undefined ? undefined : { lossMicroNats: loss, accuracyPpm: Number(acc) }
}

const absDiff = (a: bigint, b: bigint): bigint => (a > b ? a - b : b - a)

/** Closes a proposal: its status and reason, the bond returned or kept, its blocks' status. */
function finish(
  state: StateOverlay,
  p: ProposalRecord,
  outcome: { status: 'accepted' | 'refused' | 'expired'; reason: string; returnBond: boolean },
  emit: Emit,
  scores: { score?: PolScore; baseline?: PolScore } = {},
): void {
  writeAmount(state, ESCROW_KEY, escrowBalance(state) - p.bond)
  if (outcome.returnBond) credit(state, p.proposer, p.bond)
  else addToPool(state, p.bond)
  PENDING.delete(state, p.id)
  dueSet(p.deadline).delete(state, p.id)
  const record: ProposalRecord = defined({ ...p, status: outcome.status, reason: outcome.reason, ...scores })
  writeProposal(state, record)
  const blockStatus = outcome.status
  for (const hash of p.blocks) {
    const block = readBlock(state, hash)
    if (block === undefined) continue
    writeBlock(
      state,
      defined({ ...block, status: blockStatus, score: outcome.status === 'accepted' ? scores.score : undefined }),
    )
    // A stale or expired payload may be proposed again; a refused one may not.
    if (outcome.returnBond && outcome.status !== 'accepted') state.remove(payloadKey(block.header.payloadHash))
  }
  const attributes: Record<string, string> = {
    id: p.id,
    family: p.family,
    version: String(p.version),
    status: outcome.status,
    reason: outcome.reason,
    bond: outcome.returnBond ? 'returned' : 'kept',
  }
  if (scores.score !== undefined) {
    attributes.lossMicroNats = String(scores.score.lossMicroNats)
    attributes.accuracyPpm = String(scores.score.accuracyPpm)
  }
  emit({ type: outcome.status === 'accepted' ? 'experts.accepted' : 'experts.refused', attributes })
}

function accept(state: StateOverlay, p: ProposalRecord, score: PolScore, height: number): void {
  for (const hash of p.blocks) {
    const block = readBlock(state, hash)
    if (block === undefined) continue
    const name = block.header.expertName
    setIndexEntry(state, p.family, p.version, name, hash)
    appendHistory(state, p.family, name, { hash, version: p.version, height, proposal: p.id, score })
  }
  const family = readFamily(state, p.family)
  if (family !== undefined) writeFamily(state, { ...family, score })
}

/** Decides a pending proposal once its attesters hold more than 2/3 of the voting power. */
function maybeDecide(state: StateOverlay, p: ProposalRecord, ctx: TxContext, params: ExpertsParams): void {
  const power = new Map(ctx.validators.validators.map((v) => [v.did, v.power]))
  const atts = attestations(state, p.id).map((a) => ({ ...a, weight: power.get(a.validator) ?? 0n }))
  const attested = atts.reduce((s, a) => s + a.weight, 0n)
  if (attested * 3n <= ctx.validators.totalPower * 2n) return
  const faulted = atts.filter((a) => a.fault !== undefined).reduce((s, a) => s + a.weight, 0n)
  const scored = atts.flatMap((a) => (a.score === undefined ? [] : [{ score: a.score, weight: a.weight }]))
  const score = medianScore(scored)
  if (faulted * 3n > attested * 2n || score === undefined) {
    finish(state, p, { status: 'refused', reason: 'bad-payload', returnBond: false }, ctx.emit)
    return
  }
  const baseline = medianScore(
    atts.flatMap((a) => (a.baseline === undefined ? [] : [{ score: a.baseline, weight: a.weight }])),
  )
  const scores = defined({ score, baseline })
  if (
    absDiff(p.claim.lossMicroNats, score.lossMicroNats) > params.polToleranceMicroNats ||
    Math.abs(p.claim.accuracyPpm - score.accuracyPpm) > params.polAccuracyTolerancePpm
  ) {
    finish(state, p, { status: 'refused', reason: 'forged-score', returnBond: false }, ctx.emit, scores)
    return
  }
  const changed = Object.entries(p.replaces).some(
    ([name, held]) => (indexEntry(state, p.family, p.version, name) ?? '') !== held,
  )
  if (changed) {
    finish(state, p, { status: 'refused', reason: 'stale', returnBond: true }, ctx.emit, scores)
    return
  }
  const replacesSome = Object.values(p.replaces).some((h) => h !== '')
  if (
    replacesSome &&
    (baseline === undefined || baseline.lossMicroNats - score.lossMicroNats < params.polMinGainMicroNats)
  ) {
    finish(state, p, { status: 'refused', reason: 'no-improvement', returnBond: false }, ctx.emit, scores)
    return
  }
  accept(state, p, score, ctx.height)
  finish(state, p, { status: 'accepted', reason: '', returnBond: true }, ctx.emit, scores)
}

function attestTx(params: ExpertsParams): TxHandler<AttestBody> {
  return {
    decodeBody: decodeAttest,
    apply(state, tx, body, ctx) {
      const p = readProposal(state, body.proposal)
      if (p === undefined) refuse('unknown-proposal', `no proposal ${body.proposal}`)
      if (p.status !== 'pending') refuse('not-pending', `proposal ${p.id} is ${p.status}`)
      const validator = ctx.validators.validators.find((v) => v.did === tx.sender)
      if (validator === undefined) refuse('not-validator', `${tx.sender} is not a validator of height ${ctx.height}`)
      if (attestersSet(p.id).has(state, tx.sender))
        refuse('already-attested', `${tx.sender} already attested proposal ${p.id}`)
      state.write(
        attestKey(p.id, tx.sender),
        defined({
          validator: tx.sender,
          power: validator.power,
          height: ctx.height,
          score: body.score,
          baseline: body.baseline,
          fault: body.fault,
        }),
      )
      attestersSet(p.id).add(state, tx.sender)
      ctx.emit({
        type: 'experts.attested',
        attributes: { id: p.id, validator: tx.sender, fault: body.fault ?? '' },
      })
      maybeDecide(state, p, ctx, params)
    },
  }
}

// ---- usage ---------------------------------------------------------------------------------------

function callsOf(body: UsageBody): bigint {
  return body.entries.reduce((s, e) => s + BigInt(e.calls), 0n)
}

function usageTx(params: ExpertsParams): TxHandler<UsageBody> {
  return {
    decodeBody: decodeUsage,
    spends: (body) => callsOf(body) * params.expertCallPrice,
    apply(state, tx, body, ctx) {
      const family = readFamily(state, body.family)
      if (family === undefined) refuse('unknown-family', `family ${body.family} does not exist`)
      if (readMeta(state, body.family, body.version) === undefined)
        refuse('unknown-version', `${body.family} has no version ${body.version}`)
      body.entries.forEach((e, i) => {
        const block = readBlock(state, e.block)
        const ok =
          block !== undefined &&
          block.status === 'accepted' &&
          block.header.chainId === body.family &&
          (block.header.version === body.version || isCarried(state, body.family, body.version, e.block))
        if (!ok)
          refuse(
            'unknown-block',
            `entries[${i}]: ${e.block} is not an accepted block of ${body.family} v${body.version}`,
          )
      })
      const calls = callsOf(body)
      const cost = calls * params.expertCallPrice
      debit(state, tx.sender, cost)
      addToPool(state, cost)
      let selfCalls = 0n
      for (const e of body.entries) {
        const usage = readUsage(state, e.block) ?? newUsage()
        // usage a miner reports of its own block is recorded and paid for, but earns no reward
        // (as the inference module's washed usage): the epoch's weights count others' calls only
        const own = readBlock(state, e.block)?.header.miner === tx.sender
        if (own) selfCalls += BigInt(e.calls)
        writeUsage(state, e.block, {
          ...usage,
          calls: usage.calls + BigInt(e.calls),
          epochCalls: own ? usage.epochCalls : usage.epochCalls + BigInt(e.calls),
          epochLatencyMs: own ? usage.epochLatencyMs : usage.epochLatencyMs + BigInt(e.latencyMs),
          lastUsedHeight: ctx.height,
        })
        if (!own) USED.add(state, e.block)
      }
      writeFamily(state, {
        ...family,
        calls: family.calls + calls,
        epochCalls: family.epochCalls + calls,
        generations: family.generations + BigInt(body.generations),
      })
      ctx.emit({
        type: 'experts.usage',
        attributes: {
          family: body.family,
          version: String(body.version),
          gateway: tx.sender,
          calls: String(calls),
          selfCalls: String(selfCalls),
          blocks: String(body.entries.length),
          paid: String(cost),
        },
      })
    },
  }
}

// ---- genesis and end of block ---------------------------------------------------------------------

function genesisFail(what: string, err: unknown): never {
  throw new GenesisError(`genesis: ${what}: ${(err as Error).message}`, { cause: err })
}

function loadGenesis(state: StateOverlay, genesis: GenesisDoc): void {
  const section = genesis.experts
  if (section === undefined) return
  const noEmit: Emit = () => {}
  section.metas.forEach((m, i) => {
    try {
      applyMeta(state, m.owner, decodeMeta(m.body), 0, noEmit)
    } catch (err) {
      genesisFail(`experts.metas[${i}]`, err)
    }
  })
  section.blocks.forEach((b, i) => {
    try {
      const header = decodeHeader(b.header, 'header')
      const family = readFamily(state, header.chainId)
      if (family === undefined) refuse('unknown-family', `family ${header.chainId} is not a genesis family`)
      const meta = readMeta(state, header.chainId, header.version)
      if (meta === undefined) refuse('unknown-version', `${header.chainId} has no genesis version ${header.version}`)
      const checked = checkBlocks(state, family, meta, [header], undefined)
      const hash = checked.hashes[0] as string
      writeBlock(state, defined({ hash, header, proposal: 'genesis', height: 0, status: 'accepted', score: b.score }))
      state.write(payloadKey(header.payloadHash), hash)
      state.write(topoKey(family.family, family.topoCount), hash)
      setIndexEntry(state, family.family, header.version, header.expertName, hash)
      appendHistory(state, family.family, header.expertName, {
        hash,
        version: header.version,
        height: 0,
        proposal: 'genesis',
        ...(b.score === undefined ? {} : { score: b.score }),
      })
      writeFamily(
        state,
        defined({
          ...family,
          nextIndex: family.nextIndex + 1,
          topoCount: family.topoCount + 1,
          score: b.score ?? family.score,
        }),
      )
    } catch (err) {
      if (err instanceof TxError) genesisFail(`experts.blocks[${i}] (${err.reason})`, err)
      throw err
    }
  })
}

/** Creates the experts module for a chain's parameters. */
export function expertsModule(params: ChainParams): ChainModule {
  return {
    name: 'experts',
    txs: {
      meta: metaTx,
      propose: proposeTx(params),
      attest: attestTx(params),
      usage: usageTx(params),
    },
    initGenesis: loadGenesis,
    // a pending parameter block settles when its attestation window closes, by height
    wantsBlock: (state) => PENDING.size(state) > 0,
    endBlock(state, ctx) {
      const due = dueSet(ctx.height)
      for (const id of due.list(state).sort()) {
        const p = readProposal(state, id)
        if (p !== undefined && p.status === 'pending')
          finish(state, p, { status: 'expired', reason: 'expired', returnBond: true }, ctx.emit)
      }
      payExpertRewards(state, ctx, params)
    },
  }
}
