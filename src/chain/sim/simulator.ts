/**
 * Adversarial schedules for the consensus engine: an in-process network of validators running
 * the real `ConsensusEngine`, real signatures, real PoH, on a simulated clock. Everything a
 * schedule does is drawn from its seed, so any failing seed replays exactly.
 *
 * Per schedule (see `drawPlan`): message delays (some longer than every timeout), drops,
 * duplicates and reordering until GST; partitions that split the validators or isolate a
 * proposer, healed by GST; crashes at random moments with a restart from the node's "disk"
 * (privval sign state and committed blocks survive, everything else is lost); and Byzantine
 * validators, with less than 1/3 of the power in total, that equivocate proposals, double-vote,
 * run as twins (two honest engines with one key, possibly on both sides of a partition), propose
 * and vote for invalid blocks, or stay silent.
 *
 * Checked whenever the state they concern changes (every commit, every signature; nothing else
 * can break them between events):
 * - safety: no two honest nodes commit different blocks at one height; every committed block's
 *   certificate passes `verifyCommit` against the validator set; no honest key ever signs two
 *   different values for one (height, round, step); duplicate-vote evidence never names an
 *   honest validator.
 * - validity: every committed block passes the block rule against the canonical chain (parent,
 *   PoH continuity, ticks for skipped rounds, made by the selected proposer of its round).
 * - liveness: after GST every honest node commits `heightsAfterGst` new heights within
 *   `livenessBoundMs` of simulated time.
 */
import { toHex, utf8 } from '../../core/bytes.ts'
import { decode } from '../../core/codec.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { sha256 } from '../../core/hash.ts'
import { Ed25519KeyPair } from '../../identity/keys.ts'
import { didFromEd25519PublicKey } from '../../identity/did-key.ts'
import { DEFAULT_TIMEOUTS, type TimeoutConfig } from '../bft/constants.ts'
import { ConsensusEngine } from '../bft/engine.ts'
import {
  checkDuplicateVoteEvidence,
  decodeConsensusMessage,
  encodeConsensusMessage,
  proposalSignBytes,
  signProposal,
  signVote,
  verifyCommit,
  verifyProposal,
  verifyVote,
  voteSignBytes,
  type Signer,
} from '../bft/messages.ts'
import { MemorySignStateStore, PrivValidator } from '../bft/privval.ts'
import { selectProposer } from '../bft/proposer.ts'
import {
  blockKey,
  makeValidatorSet,
  type CommitCertificate,
  type ConsensusMessage,
  type DuplicateVoteEvidence,
  type Proposal,
  type QuorumRule,
  type ValidatorSet,
  type Vote,
} from '../bft/types.ts'
import {
  BLOCK_DEFECTS,
  checkSimBlock,
  SimChainApp,
  simBlockId,
  tipOf,
  type ChainTip,
  type CommittedBlock,
  type SimBlock,
  type SimChainParams,
} from './app.ts'
import { createRng, type Rng } from '../../core/rng.ts'
import { SimClock } from './scheduler.ts'

export const BYZANTINE_BEHAVIOURS = ['equivocate', 'double-vote', 'twins', 'invalid-blocks', 'silent'] as const
export type ByzantineBehaviour = (typeof BYZANTINE_BEHAVIOURS)[number]

export interface ScheduleOptions {
  /** Validators. */
  nodes: number
  /** Byzantine validators among them; their power must stay below 1/3. */
  byzantine: number
  /** Behaviours the Byzantine validators draw from. @default all of BYZANTINE_BEHAVIOURS */
  behaviours?: readonly ByzantineBehaviour[]
  /** New heights every honest node must commit after GST. @default 3 */
  heightsAfterGst?: number
  /** Simulated time after GST for those heights. @default 600_000 ms */
  livenessBoundMs?: number
  /** Latest GST drawn. @default 20_000 ms */
  maxGstMs?: number
  /** Consensus timeouts. @default the engine's (CometBFT-like) defaults */
  timeouts?: Partial<TimeoutConfig>
  /** Stop a schedule after this many events (a runaway guard, reported as a liveness failure). @default 2_000_000 */
  maxEvents?: number
  /** ONLY to prove the checker can fail: a weaker quorum rule for every engine. */
  quorum?: QuorumRule
  /** Receives one line per notable event (commits, crashes, partitions, sends) when replaying a seed. */
  trace?(line: string): void
}

export interface SchedulePlan {
  gstMs: number
  /** Voting power per validator (decimal strings, bigint in the simulation). */
  powers: string[]
  byzantine: { validator: number; behaviour: ByzantineBehaviour }[]
  network: {
    dropRate: number
    duplicateRate: number
    longDelayRate: number
    minDelayMs: number
    maxDelayMs: number
    longDelayMaxMs: number
  }
  partitions: { startMs: number; endMs: number; kind: 'split' | 'isolate-proposer' }[]
  crashes: { validator: number; atMs: number; restartMs: number }[]
}

export type ViolationKind =
  | 'conflicting-commit'
  | 'invalid-certificate'
  | 'honest-double-sign'
  | 'evidence-against-honest'
  | 'invalid-block-committed'
  | 'engine-error'

export interface Violation {
  kind: ViolationKind
  node: string
  height: number
  timeMs: number
  detail: string
}

export interface ScheduleResult {
  seed: number
  ok: boolean
  plan: SchedulePlan
  safetyViolations: Violation[]
  validityViolations: Violation[]
  /** Why liveness failed, if it did. */
  livenessFailure?: string
  /** Highest height committed by an honest node. */
  height: number
  /** Lowest height committed by an honest node at the end. */
  minHonestHeight: number
  /** Highest round any honest engine reached. */
  maxRound: number
  simulatedMs: number
  events: number
  stats: ScheduleStats
}

export interface ScheduleStats {
  /** Messages handed to the network (per receiver). */
  sent: number
  /** Messages lost: dropped before GST, cut by a partition, or sent to a crashed node. */
  dropped: number
  /** Messages an engine refused (bad signature, wrong proposer, non-member...). */
  rejected: number
  /** Duplicate-vote evidence reported by engines. */
  evidence: number
  /** Block-sync requests by nodes that fell behind. */
  syncs: number
  crashes: number
  partitions: number
}

export interface RunSchedulesOptions extends ScheduleOptions {
  /** First seed; schedule i uses seed + i. */
  seed: number
  count: number
  /** Called after each schedule. */
  onProgress?(done: number, total: number, last: ScheduleResult): void
}

export interface Summary {
  nodes: number
  byzantine: number
  seed: number
  schedules: number
  safetyViolations: number
  livenessFailures: number
  validityViolations: number
  failingSeeds: number[]
  /** Highest honest height per schedule: smallest, largest, and sum over schedules. */
  heights: { min: number; max: number; total: number }
  /** Highest round reached in any schedule. */
  maxRound: number
  /** Schedules that had each Byzantine behaviour. */
  behaviours: Record<ByzantineBehaviour, number>
  /** What the schedules did, summed. */
  totals: ScheduleStats
  elapsedMs: number
  schedulesPerSecond: number
  /** The first failing schedule's violations, for a quick look (replay it with its seed). */
  firstFailure?: { seed: number; violations: Violation[]; livenessFailure?: string }
}

const HASHES_PER_TICK = 2
const TICKS_PER_SECOND = 10
const SYNC_BATCH = 32
const SYNC_RETRY_MS = 3000

const validatorKeys: Ed25519KeyPair[] = []

/** Validator i's key: fixed across schedules (only the chain id, and so every signature, changes). */
function validatorKey(i: number): Ed25519KeyPair {
  while (validatorKeys.length <= i) {
    validatorKeys.push(Ed25519KeyPair.fromSeed(sha256(utf8(`donghae-sim-validator-${validatorKeys.length}`))))
  }
  return validatorKeys[i] as Ed25519KeyPair
}

/** Checks the options; throws `InvalidInputError` with a one-line reason. */
export function checkScheduleOptions(options: ScheduleOptions): void {
  const { nodes, byzantine } = options
  if (!Number.isSafeInteger(nodes) || nodes < 1 || nodes > 64) throw new InvalidInputError('nodes must be 1..64')
  if (!Number.isSafeInteger(byzantine) || byzantine < 0) throw new InvalidInputError('byzantine must be 0 or more')
  if (3 * byzantine >= nodes) {
    throw new InvalidInputError(
      `byzantine validators must hold less than 1/3 of the power: ${byzantine} of ${nodes} equal-stake validators is too many (at most ${Math.floor((nodes - 1) / 3)})`,
    )
  }
  if (options.behaviours !== undefined && options.behaviours.length === 0) {
    throw new InvalidInputError('behaviours must name at least one Byzantine behaviour')
  }
}

/** Draws everything a schedule will do from its seed. */
export function drawPlan(seed: number, options: ScheduleOptions): SchedulePlan {
  const rng = createRng(seed).fork('plan')
  const { nodes, byzantine } = options
  const gstMs = rng.int(3000, Math.max(3000, options.maxGstMs ?? 20_000))
  const byzIndexes = rng.shuffle([...Array(nodes).keys()]).slice(0, byzantine)
  const behaviours = options.behaviours ?? BYZANTINE_BEHAVIOURS
  const byz = byzIndexes.sort((a, b) => a - b).map((validator) => ({ validator, behaviour: rng.pick(behaviours) }))
  const unequal = rng.chance(0.3)
  const unit = 1_000_000_000n
  // Byzantine validators get one unit each, honest ones 1..4: with 3f < n that keeps Byzantine power < 1/3.
  const powers = [...Array(nodes).keys()].map((i) =>
    (unequal && !byzIndexes.includes(i) ? BigInt(rng.int(1, 4)) * unit : unit).toString(),
  )
  const partitions: SchedulePlan['partitions'] = []
  for (let i = rng.int(0, 2); i > 0; i--) {
    const startMs = rng.int(0, gstMs - 1000)
    partitions.push({
      startMs,
      endMs: rng.int(startMs + 500, gstMs),
      kind: rng.chance(0.5) ? 'split' : 'isolate-proposer',
    })
  }
  const honest = [...Array(nodes).keys()].filter((i) => !byzIndexes.includes(i))
  const crashes: SchedulePlan['crashes'] = []
  for (let i = rng.int(0, 2); i > 0 && honest.length > 0; i--) {
    const atMs = rng.int(0, gstMs - 600)
    crashes.push({ validator: rng.pick(honest), atMs, restartMs: rng.int(atMs + 100, gstMs) })
  }
  const calm = rng.chance(0.15)
  return {
    gstMs,
    powers,
    byzantine: byz,
    network: {
      dropRate: calm ? 0 : rng.pick([0, 0.02, 0.1, 0.3]),
      duplicateRate: rng.pick([0, 0.05, 0.2]),
      longDelayRate: calm ? 0 : rng.pick([0, 0.05, 0.2]),
      minDelayMs: rng.int(1, 20),
      maxDelayMs: rng.int(20, 300),
      longDelayMaxMs: rng.int(2000, 12_000),
    },
    partitions,
    crashes,
  }
}

interface Disk {
  sign: MemorySignStateStore
  blocks: CommittedBlock[]
}

interface SimNode {
  name: string
  validator: number
  did: string
  key: Ed25519KeyPair
  honest: boolean
  behaviour: ByzantineBehaviour | undefined
  disk: Disk
  rng: Rng
  up: boolean
  incarnation: number
  engine: ConsensusEngine<SimBlock> | undefined
  app: SimChainApp | undefined
  syncSince: number | undefined
  baseline: number
}

/** Runs one schedule. Resolves (never rejects for consensus failures: they are in the result). */
export async function runSchedule(seed: number, options: ScheduleOptions): Promise<ScheduleResult> {
  checkScheduleOptions(options)
  return new Simulation(seed, options).run()
}

/** Runs `count` schedules with seeds seed, seed+1, ... and sums them up. */
export async function runSchedules(options: RunSchedulesOptions): Promise<Summary> {
  checkScheduleOptions(options)
  if (!Number.isSafeInteger(options.count) || options.count < 1) throw new InvalidInputError('count must be 1 or more')
  if (!Number.isSafeInteger(options.seed) || options.seed < 0) throw new InvalidInputError('seed must be 0 or more')
  const started = performance.now()
  const summary: Summary = {
    nodes: options.nodes,
    byzantine: options.byzantine,
    seed: options.seed,
    schedules: 0,
    safetyViolations: 0,
    livenessFailures: 0,
    validityViolations: 0,
    failingSeeds: [],
    heights: { min: Number.POSITIVE_INFINITY, max: 0, total: 0 },
    maxRound: 0,
    behaviours: Object.fromEntries(BYZANTINE_BEHAVIOURS.map((b) => [b, 0])) as Record<ByzantineBehaviour, number>,
    totals: { sent: 0, dropped: 0, rejected: 0, evidence: 0, syncs: 0, crashes: 0, partitions: 0 },
    elapsedMs: 0,
    schedulesPerSecond: 0,
  }
  for (let i = 0; i < options.count; i++) {
    const result = await runSchedule(options.seed + i, options)
    addToSummary(summary, result)
    options.onProgress?.(i + 1, options.count, result)
  }
  if (summary.schedules === 0) summary.heights.min = 0
  summary.elapsedMs = Math.round(performance.now() - started)
  summary.schedulesPerSecond = Math.round((summary.schedules / Math.max(1, summary.elapsedMs)) * 1000 * 10) / 10
  return summary
}

function addToSummary(summary: Summary, result: ScheduleResult): void {
  summary.schedules++
  summary.safetyViolations += result.safetyViolations.length
  summary.validityViolations += result.validityViolations.length
  if (result.livenessFailure !== undefined) summary.livenessFailures++
  if (!result.ok) {
    summary.failingSeeds.push(result.seed)
    summary.firstFailure ??= {
      seed: result.seed,
      violations: [...result.safetyViolations, ...result.validityViolations].slice(0, 5),
      ...(result.livenessFailure === undefined ? {} : { livenessFailure: result.livenessFailure }),
    }
  }
  summary.heights.min = Math.min(summary.heights.min, result.height)
  summary.heights.max = Math.max(summary.heights.max, result.height)
  summary.heights.total += result.height
  summary.maxRound = Math.max(summary.maxRound, result.maxRound)
  for (const behaviour of new Set(result.plan.byzantine.map((b) => b.behaviour))) summary.behaviours[behaviour]++
  for (const key of Object.keys(summary.totals) as (keyof ScheduleStats)[]) summary.totals[key] += result.stats[key]
}

/**
 * A signature-check cache shared by the nodes of one schedule: each signed message is verified
 * once, not once per receiver. Keyed by the signed content (never the signature alone, which an
 * attacker could pair with other content); a message object delivered to several nodes is
 * looked up by identity first (the simulator never mutates delivered messages).
 */
function createVerifier(): {
  vote(vote: Vote, publicKey: Uint8Array): boolean
  proposal(p: Proposal, publicKey: Uint8Array): boolean
} {
  const cache = new Map<string, boolean>()
  const seen = new WeakMap<object, { pk: Uint8Array; ok: boolean }>()
  const byIdentity = (msg: object, pk: Uint8Array, verify: () => boolean): boolean => {
    const hit = seen.get(msg)
    if (hit !== undefined && hit.pk === pk) return hit.ok
    const ok = verify()
    seen.set(msg, { pk, ok })
    return ok
  }
  const check = (kind: string, bytes: Uint8Array, sig: Uint8Array, pk: Uint8Array, verify: () => boolean): boolean => {
    const key = `${kind}:${toHex(sha256(pk, sig, bytes))}`
    let ok = cache.get(key)
    if (ok === undefined) {
      ok = verify()
      if (cache.size > 500_000) cache.clear()
      cache.set(key, ok)
    }
    return ok
  }
  return {
    vote: (vote, pk) =>
      byIdentity(vote, pk, () => {
        try {
          return check('v', voteSignBytes(vote), vote.signature, pk, () => verifyVote(vote, pk))
        } catch {
          return false
        }
      }),
    proposal: (p, pk) =>
      byIdentity(p, pk, () => {
        try {
          return check('p', proposalSignBytes(p), p.signature, pk, () => verifyProposal(p, pk))
        } catch {
          return false
        }
      }),
  }
}

class Simulation {
  readonly seed: number
  readonly options: ScheduleOptions
  readonly plan: SchedulePlan
  readonly clock = new SimClock(0)
  readonly net: Rng
  readonly params: SimChainParams
  readonly set: ValidatorSet
  readonly nodes: SimNode[] = []
  readonly byName = new Map<string, SimNode>()
  readonly verifier = createVerifier()
  readonly timeouts: TimeoutConfig
  readonly canonical: { id: Uint8Array; tip: ChainTip }[] = []
  readonly signed = new Map<string, string>()
  readonly safety: Violation[] = []
  readonly validity: Violation[] = []
  readonly stats: ScheduleStats = { sent: 0, dropped: 0, rejected: 0, evidence: 0, syncs: 0, crashes: 0, partitions: 0 }
  readonly honestDids = new Set<string>()
  /** Active partitions: a map from node name to side. */
  partitions: Map<string, number>[] = []
  events = 0
  maxRound = 0

  constructor(seed: number, options: ScheduleOptions) {
    this.seed = seed
    this.options = options
    this.plan = drawPlan(seed, options)
    const root = createRng(seed)
    this.net = root.fork('network')
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts }
    const chainId = `sim-${seed}`
    this.set = makeValidatorSet(
      this.plan.powers.map((power, i) => {
        const key = validatorKey(i)
        return { did: didFromEd25519PublicKey(key.publicKey), publicKey: key.publicKey, power: BigInt(power) }
      }),
    )
    this.params = {
      chainId,
      set: this.set,
      timeouts: this.timeouts,
      hashesPerTick: HASHES_PER_TICK,
      ticksPerSecond: TICKS_PER_SECOND,
      proposerSeed: utf8(chainId),
      genesis: { id: sha256(utf8(`genesis/${chainId}`)), pohEnd: sha256(utf8(`poh-genesis/${chainId}`)) },
    }
    for (let i = 0; i < options.nodes; i++) {
      const byz = this.plan.byzantine.find((b) => b.validator === i)
      this.#addNode(`v${i}`, i, byz?.behaviour, root)
      if (byz?.behaviour === 'twins') this.#addNode(`v${i}b`, i, 'twins', root)
    }
  }

  #addNode(name: string, validator: number, behaviour: ByzantineBehaviour | undefined, root: Rng): void {
    const key = validatorKey(validator)
    const did = didFromEd25519PublicKey(key.publicKey)
    if (behaviour === undefined) this.honestDids.add(did)
    const node: SimNode = {
      name,
      validator,
      did,
      key,
      honest: behaviour === undefined,
      behaviour,
      disk: { sign: new MemorySignStateStore(), blocks: [] },
      rng: root.fork(`node-${name}`),
      up: true,
      incarnation: 0,
      engine: undefined,
      app: undefined,
      syncSince: undefined,
      baseline: 0,
    }
    this.nodes.push(node)
    this.byName.set(name, node)
  }

  async run(): Promise<ScheduleResult> {
    const plan = this.plan
    for (const node of this.nodes) this.#boot(node)
    await this.#settle()
    for (const p of plan.partitions) {
      this.clock.setTimer(p.startMs, () => this.#startPartition(p.kind, p.endMs))
    }
    for (const c of plan.crashes) {
      for (const node of this.nodes.filter((n) => n.validator === c.validator)) {
        this.clock.setTimer(c.atMs, () => this.#crash(node))
        this.clock.setTimer(c.restartMs, () => this.#restart(node))
      }
    }
    let gstReached = false
    this.clock.setTimer(plan.gstMs, () => {
      this.#trace('GST: partitions healed, no more drops or long delays')
      gstReached = true
      this.partitions = []
      for (const node of this.nodes) node.baseline = node.disk.blocks.length
    })
    const deadline = plan.gstMs + (this.options.livenessBoundMs ?? 600_000)
    const want = this.options.heightsAfterGst ?? 3
    const maxEvents = this.options.maxEvents ?? 2_000_000
    let livenessFailure: string | undefined
    for (;;) {
      if (gstReached && this.#honest().every((n) => n.disk.blocks.length >= n.baseline + want)) break
      if (this.events >= maxEvents) {
        livenessFailure = `gave up after ${this.events} events at ${this.clock.now()} ms`
        break
      }
      if (!this.clock.step(deadline)) {
        const lagging = this.#honest()
          .filter((n) => n.disk.blocks.length < n.baseline + want)
          .map((n) => `${n.name}@${n.disk.blocks.length + 1}/r${n.engine?.status().round ?? '-'}`)
        livenessFailure = `honest nodes ${lagging.join(', ')} did not commit ${want} heights within ${deadline - plan.gstMs} ms after GST (${plan.gstMs} ms)`
        break
      }
      this.events++
      await this.#settle()
    }
    for (const node of this.nodes) node.engine?.stop()
    const heights = this.#honest().map((n) => n.disk.blocks.length)
    const result: ScheduleResult = {
      seed: this.seed,
      ok: this.safety.length === 0 && this.validity.length === 0 && livenessFailure === undefined,
      plan,
      safetyViolations: this.safety,
      validityViolations: this.validity,
      height: this.canonical.length,
      minHonestHeight: heights.length === 0 ? 0 : Math.min(...heights),
      maxRound: this.maxRound,
      simulatedMs: this.clock.now(),
      events: this.events,
      stats: this.stats,
    }
    if (livenessFailure !== undefined) result.livenessFailure = livenessFailure
    return result
  }

  #trace(line: string): void {
    this.options.trace?.(`${String(this.clock.now()).padStart(7)} ${line}`)
  }

  #honest(): SimNode[] {
    return this.nodes.filter((n) => n.honest)
  }

  async #settle(): Promise<void> {
    for (const node of this.nodes) {
      const engine = node.engine
      if (engine === undefined) continue
      await engine.idle()
      const round = engine.status().round
      if (node.honest && round > this.maxRound) this.maxRound = round
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Nodes: boot, crash, restart

  #boot(node: SimNode): void {
    node.up = true
    if (node.behaviour === 'silent') return
    const behaviour = node.behaviour
    const app = new SimChainApp(this.params, {
      self: node.did,
      rng: node.rng.fork(`app-${node.incarnation}`),
      disk: node.disk.blocks,
      onCommit: (block, cert) => this.#onCommit(node, block, cert),
      ...(behaviour === 'invalid-blocks' ? { acceptAll: true, defect: () => node.rng.pick(BLOCK_DEFECTS) } : {}),
    })
    const signer: Signer = node.honest
      ? { publicKey: node.key.publicKey, sign: (kind, payload) => this.#observeSign(node, kind, payload) }
      : node.key
    const privval = new PrivValidator(signer, node.disk.sign)
    const engine = new ConsensusEngine<SimBlock>({
      chainId: this.params.chainId,
      height: node.disk.blocks.length + 1,
      app,
      privval,
      clock: this.clock,
      send: (msg) => this.#onSend(node, msg),
      timeouts: this.timeouts,
      ...(this.options.quorum === undefined ? {} : { quorum: this.options.quorum }),
      verifyVote: this.verifier.vote,
      verifyProposal: this.verifier.proposal,
      onReject: () => {
        this.stats.rejected++
      },
      onEvidence: (ev) => this.#onEvidence(node, ev),
      onFutureHeight: (height, peer) => this.#requestSync(node, height, peer),
      onError: (err) => {
        this.safety.push(this.#violation('engine-error', node, node.disk.blocks.length + 1, String(err)))
      },
    })
    node.app = app
    node.engine = engine
    engine.start()
  }

  #crash(node: SimNode): void {
    if (!node.up) return
    this.#trace(`${node.name} crashes`)
    this.stats.crashes++
    node.engine?.stop()
    node.engine = undefined
    node.app = undefined
    node.up = false
    node.syncSince = undefined
    node.incarnation++
  }

  #restart(node: SimNode): void {
    if (node.up) return
    this.#trace(`${node.name} restarts at height ${node.disk.blocks.length + 1}`)
    this.#boot(node)
  }

  // ---------------------------------------------------------------------------------------------
  // Network

  #others(from: SimNode): SimNode[] {
    return this.nodes.filter((n) => n !== from)
  }

  /** Every message leaves through the real wire codec, once per send. */
  #onSend(from: SimNode, msg: ConsensusMessage): void {
    const wire = decodeConsensusMessage(encodeConsensusMessage(msg))
    if (this.options.trace !== undefined) this.#trace(`${from.name} sends ${describeMessage(wire)}`)
    switch (from.behaviour) {
      case 'equivocate':
        if (wire.kind === 'proposal') return this.#equivocate(from, wire)
        break
      case 'double-vote':
        if (wire.kind === 'vote') return this.#doubleVote(from, wire.vote)
        break
      case 'invalid-blocks':
        if (wire.kind === 'proposal') this.#voteForOwnBlock(from, wire.proposal)
        break
    }
    for (const to of this.#others(from)) this.#transmit(from, to, wire)
  }

  #transmit(from: SimNode, to: SimNode, msg: ConsensusMessage): void {
    this.#carry(from, to, () => to.engine?.receive(msg, from.name))
  }

  /** Delivers `arrive` at `to` after a network delay, unless dropped, partitioned or `to` is down. */
  #carry(from: SimNode, to: SimNode, arrive: () => void): void {
    this.stats.sent++
    const net = this.plan.network
    const rng = this.net
    const chaotic = this.clock.now() < this.plan.gstMs
    if (chaotic && rng.chance(net.dropRate)) {
      this.stats.dropped++
      return
    }
    const copies = rng.chance(net.duplicateRate) ? 2 : 1
    for (let i = 0; i < copies; i++) {
      const delay =
        chaotic && rng.chance(net.longDelayRate)
          ? rng.int(1000, net.longDelayMaxMs)
          : rng.int(net.minDelayMs, net.maxDelayMs)
      this.clock.setTimer(delay, () => {
        if (!to.up || this.#partitioned(from, to)) {
          this.stats.dropped++
          return
        }
        arrive()
      })
    }
  }

  #partitioned(a: SimNode, b: SimNode): boolean {
    for (const sides of this.partitions) if (sides.get(a.name) !== sides.get(b.name)) return true
    return false
  }

  #startPartition(kind: 'split' | 'isolate-proposer', endMs: number): void {
    const sides = new Map<string, number>()
    if (kind === 'split') {
      const rng = this.net
      for (const node of this.nodes) sides.set(node.name, rng.int(0, 1))
      const first = this.nodes[0]
      if (first !== undefined && new Set(sides.values()).size === 1)
        sides.set(first.name, 1 - (sides.get(first.name) ?? 0))
    } else {
      // Isolate the proposer that the most advanced honest node is waiting for.
      const ahead = this.#honest()
        .filter((n) => n.engine !== undefined)
        .sort((x, y) => y.disk.blocks.length - x.disk.blocks.length)[0]
      const status = ahead?.engine?.status()
      const height = status?.height ?? 1
      const round = status?.round ?? 0
      const proposer = selectProposer(this.set, height, round, this.params.proposerSeed).did
      for (const node of this.nodes) sides.set(node.name, node.did === proposer ? 1 : 0)
    }
    this.partitions.push(sides)
    this.stats.partitions++
    this.#trace(`partition (${kind}) until ${endMs}: ${[...sides].map(([n, side]) => `${n}:${side}`).join(' ')}`)
    this.clock.setTimer(endMs - this.clock.now(), () => {
      this.partitions = this.partitions.filter((p) => p !== sides)
    })
  }

  // ---------------------------------------------------------------------------------------------
  // Block sync: a node that hears of a later height fetches committed blocks from that peer.

  #requestSync(node: SimNode, height: number, peerName: string | undefined): void {
    const peer = peerName === undefined ? undefined : this.byName.get(peerName)
    if (peer === undefined || height <= node.disk.blocks.length + 1) return
    const now = this.clock.now()
    if (node.syncSince !== undefined && now - node.syncSince < SYNC_RETRY_MS) return
    node.syncSince = now
    this.stats.syncs++
    const incarnation = node.incarnation
    const from = node.disk.blocks.length
    this.#carry(node, peer, () => {
      if (peer.engine === undefined) return
      const batch = peer.disk.blocks.slice(from, from + SYNC_BATCH)
      if (batch.length === 0) return
      this.#carry(peer, node, () => {
        if (node.incarnation !== incarnation || node.engine === undefined) return
        node.syncSince = undefined
        for (const { block, cert } of batch) node.engine.receiveCommit(block, cert, peer.name)
      })
    })
  }

  // ---------------------------------------------------------------------------------------------
  // Byzantine behaviours

  #equivocate(from: SimNode, msg: ConsensusMessage & { kind: 'proposal' }): void {
    const p = msg.proposal
    const app = from.app
    if (app === undefined) return
    const block = app.createBlock(p.height, p.round)
    const alt: ConsensusMessage = {
      kind: 'proposal',
      proposal: signProposal(from.key, { ...p, blockId: simBlockId(block), validRound: -1 }),
      block: app.encodeBlock(block),
    }
    for (const to of this.#others(from)) {
      const choice = from.rng.int(0, 2)
      if (choice !== 1) this.#transmit(from, to, msg)
      if (choice !== 0) this.#transmit(from, to, alt)
    }
  }

  #doubleVote(from: SimNode, vote: Vote): void {
    const otherId = vote.blockId === null ? from.rng.bytes(32) : from.rng.chance(0.5) ? null : from.rng.bytes(32)
    const alt: ConsensusMessage = { kind: 'vote', vote: signVote(from.key, { ...vote, blockId: otherId }) }
    const msg: ConsensusMessage = { kind: 'vote', vote }
    for (const to of this.#others(from)) {
      const choice = from.rng.int(0, 2)
      if (choice !== 1) this.#transmit(from, to, msg)
      if (choice !== 0) this.#transmit(from, to, alt)
    }
  }

  /** An invalid-block proposer also prevotes and precommits its block at once. */
  #voteForOwnBlock(from: SimNode, p: Proposal): void {
    for (const type of ['prevote', 'precommit'] as const) {
      const vote = signVote(from.key, {
        chainId: p.chainId,
        height: p.height,
        round: p.round,
        type,
        blockId: p.blockId,
        validator: from.did,
      })
      for (const to of this.#others(from)) this.#transmit(from, to, { kind: 'vote', vote })
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Checks

  #violation(kind: ViolationKind, node: SimNode, height: number, detail: string): Violation {
    return { kind, node: node.name, height, timeMs: this.clock.now(), detail }
  }

  /** Every signature an honest key makes passes here: one value per (height, round, step), ever. */
  #observeSign(node: SimNode, kind: string, payload: Uint8Array): Uint8Array {
    const body = decode<{ height: number; round: number; type?: string; blockId: Uint8Array | null }>(payload)
    const step = kind === 'chain.proposal' ? 'proposal' : (body.type ?? '?')
    const slot = `${node.did}|${body.height}|${body.round}|${step}`
    const value = blockKey(body.blockId)
    const before = this.signed.get(slot)
    if (before === undefined) this.signed.set(slot, value)
    else if (before !== value) {
      this.safety.push(
        this.#violation(
          'honest-double-sign',
          node,
          body.height,
          `${step} at round ${body.round}: ${before} then ${value}`,
        ),
      )
    }
    return node.key.sign(kind, payload)
  }

  #onEvidence(node: SimNode, ev: DuplicateVoteEvidence): void {
    this.stats.evidence++
    try {
      checkDuplicateVoteEvidence(ev, this.set, this.params.chainId, { verifyVote: this.verifier.vote })
    } catch (err) {
      this.safety.push(
        this.#violation('engine-error', node, ev.a.height, `engine reported bad evidence: ${String(err)}`),
      )
    }
    if (this.honestDids.has(ev.a.validator)) {
      this.safety.push(this.#violation('evidence-against-honest', node, ev.a.height, `validator ${ev.a.validator}`))
    }
  }

  #onCommit(node: SimNode, block: SimBlock, cert: CommitCertificate): void {
    this.#trace(
      `${node.name} commits height ${cert.height} round ${cert.round} ${toHex(simBlockId(block)).slice(0, 8)}`,
    )
    if (!node.honest) return
    const height = cert.height
    try {
      verifyCommit(cert, this.set, this.params.chainId, { verifyVote: this.verifier.vote })
    } catch (err) {
      this.safety.push(this.#violation('invalid-certificate', node, height, (err as Error).message))
    }
    const id = simBlockId(block)
    const known = this.canonical[height - 1]
    if (known !== undefined) {
      if (toHex(known.id) !== toHex(id)) {
        this.safety.push(
          this.#violation(
            'conflicting-commit',
            node,
            height,
            `committed ${toHex(id)} where another honest node committed ${toHex(known.id)}`,
          ),
        )
      }
      return
    }
    if (height !== this.canonical.length + 1) {
      this.safety.push(this.#violation('conflicting-commit', node, height, 'committed a height out of order'))
      return
    }
    const parent = height === 1 ? this.params.genesis : (this.canonical[height - 2] as { tip: ChainTip }).tip
    const problem = checkSimBlock(this.params, block, parent, height, cert.round)
    if (problem !== undefined) this.validity.push(this.#violation('invalid-block-committed', node, height, problem))
    this.canonical.push({ id, tip: tipOf(block) })
  }
}

function describeMessage(msg: ConsensusMessage): string {
  if (msg.kind === 'proposal') {
    const p = msg.proposal
    return `proposal h${p.height} r${p.round} vr${p.validRound} ${toHex(p.blockId).slice(0, 8)}`
  }
  const v = msg.vote
  return `${v.type} h${v.height} r${v.round} ${v.blockId === null ? 'nil' : toHex(v.blockId).slice(0, 8)} by ${v.validator.slice(-6)}`
}
