/**
 * The chain part of a node: builds it from its parts, starts them in order and stops them in
 * reverse. Read it as the table of contents of a node's chain:
 *
 *   store (LevelDB) -> state machine (bank, staking, inference) -> mempool -> PoH (worker generator
 *   + verifier) -> chain app -> private validator -> chain runtime (consensus, gossip, sync)
 *   -> own-transaction queue
 *
 * `FullNode` (full-node.ts) puts it on libp2p with the inference market and the HTTP API.
 */
import { join } from 'node:path'
import { mkdir } from 'node:fs/promises'
import { repeat, systemClock, type Clock } from '../core/clock.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import { InvalidInputError, describeError } from '../core/errors.ts'
import { toHex } from '../core/bytes.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { VerifyPool } from '../identity/verify-pool.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import { Store } from '../store/store.ts'
import { ChainApp } from '../chain/app.ts'
import { CHAIN_DB_FORMAT } from '../chain/db-format.ts'
import { StateMachine } from '../chain/host.ts'
import { Mempool } from '../chain/mempool.ts'
import type { GenesisDoc } from '../chain/genesis.ts'
import { InlinePohService, WorkerPohService } from '../chain/poh-service.ts'
import { PohGenerator } from '../chain/poh/generator.ts'
import { PohVerifier } from '../chain/poh/verifier.ts'
import { LevelSignStateStore, PrivValidator } from '../chain/bft/privval.ts'
import { ChainRuntime, proposerFor, ticksRequiredFor } from '../chain/runtime.ts'
import type { PeerTransport } from '../core/transport.ts'
import type { ChainEvent } from '../chain/host.ts'
import type { Block } from '../chain/block.ts'
import { bankModule, feeCollector, balanceOf } from '../bank/bank.ts'
import { stakingModule, validatorSetAt, validatorRecord, unbondingOf, retainedProofKeys } from '../staking/staking.ts'
import { inferenceModule } from '../inference/chain/module.ts'
import { expertsModule } from '../experts/chain/module.ts'
import { governanceModule } from '../governance/chain/module.ts'
import { arenaModule } from '../arena/chain/module.ts'
import { flModule } from '../fl/chain/module.ts'
import { OwnTxQueue } from './own-txs.ts'
import { accountNonce } from '../chain/host.ts'
import { currentMinFee } from '../chain/governed.ts'
import type { AccountView, ChainApi, NodeStatus } from '../api/chain-api.ts'

/** How often the own-transaction queue looks for a gap between commits (own-txs.ts). */
const OWN_TX_HEAL_MS = 5_000

/**
 * Rounds whose PoH ticks the generator makes after a commit, or after a waiting height begins
 * round 0, before it rests (PohGenerator.maxTicks), on the validator that proposes round 1 or 2 of
 * that height (ChainAppOptions.tickRounds; the others make none). While a height waits for work
 * nobody ticks (WorkerPohService.pause).
 */
const IDLE_POH_ROUNDS = 3

/**
 * How long a height's round 0 asks for PoH ticks before the generator starts a thread to make them
 * (PohGenerator.threadDelayMs, counted from the commit, so the chain's commit timeout is added). A
 * height that commits at round 0 needs one tick, which the proposer makes on its own thread (about
 * 1.4 ms at the devnet's 2,000 hashes a tick); only a height whose round 0 fails needs the ticks
 * of a whole round, and then the thread has made all but about this long's worth (and its own
 * start), which the proposer of round 1 adds flat out. So a chain whose heights end quickly, idle
 * or loaded, runs no PoH thread (about 15 MB, and 7 % of a core while it ticks).
 */
const POH_THREAD_DELAY_MS = 500

/**
 * How long the PoH generator rests without a break before its thread ends (PohGenerator.idleMs).
 * Starting a thread again costs about 80 ms of CPU, but one starts only for a height that lasts
 * longer than POH_THREAD_DELAY_MS, which an idle chain's empty blocks do not.
 */
const POH_GENERATOR_IDLE_MS = 20_000

export interface NodeOptions {
  /** Directory for this node's database (`<dataDir>/chain`). */
  dataDir: string
  genesis: GenesisDoc
  key: Ed25519KeyPair
  transport: PeerTransport
  moniker?: string
  /** Sign votes and proposals (the key must be in the validator set to matter). @default true */
  validator?: boolean
  /** 'worker': PoH on worker threads (production); 'inline': on the main thread (tests). @default 'worker' */
  poh?: 'worker' | 'inline'
  /** How long the PoH generator rests before its thread ends (PohGenerator.idleMs). @default 20_000 */
  pohIdleMs?: number
  /**
   * How long after a commit the PoH generator waits before it starts a thread to tick
   * (PohGenerator.threadDelayMs). @default the genesis's timeoutCommitMs + 500
   */
  pohThreadDelayMs?: number
  /** Shared PoH verifier (several in-process nodes can share one pool). */
  verifier?: PohVerifier
  /** Shared signature verification pool; one is started per node without it. */
  verifyPool?: VerifyPool
  clock?: Clock
  logger?: Logger
  gossipMs?: number
  /** Called after every commit (events for the API's stream, metrics). */
  onCommit?(block: Block, events: ChainEvent[]): void
}

/**
 * Runs every stop in order, each even when an earlier one threw; throws the first failure once all
 * have run (a part that cannot stop cleanly must not keep the others running).
 */
export async function stopAll(stops: ReadonlyArray<() => Promise<void> | void>): Promise<void> {
  let first: { error: unknown } | undefined
  for (const stop of stops) {
    try {
      await stop()
    } catch (error) {
      first ??= { error }
    }
  }
  if (first !== undefined) throw first.error
}

export class DonghaeNode {
  readonly did: string
  readonly store: Store
  readonly app: ChainApp
  readonly mempool: Mempool
  readonly runtime: ChainRuntime
  readonly #stops: Array<() => Promise<void> | void>
  readonly #moniker: string
  readonly #transport: PeerTransport
  /** The one queue for every transaction the node signs with its own key. */
  readonly ownTxs: OwnTxQueue
  readonly #commitListeners: Set<(block: Block, events: ChainEvent[]) => void>
  /** The PoH generator (worker PoH), for what it reports: whether its thread runs now. */
  readonly pohGenerator: PohGenerator | undefined

  private constructor(parts: {
    did: string
    store: Store
    app: ChainApp
    mempool: Mempool
    runtime: ChainRuntime
    stops: Array<() => Promise<void> | void>
    moniker: string
    transport: PeerTransport
    ownTxs: OwnTxQueue
    commitListeners: Set<(block: Block, events: ChainEvent[]) => void>
    pohGenerator: PohGenerator | undefined
  }) {
    this.pohGenerator = parts.pohGenerator
    this.did = parts.did
    this.store = parts.store
    this.app = parts.app
    this.mempool = parts.mempool
    this.runtime = parts.runtime
    this.#stops = parts.stops
    this.#moniker = parts.moniker
    this.#transport = parts.transport
    this.ownTxs = parts.ownTxs
    this.#commitListeners = parts.commitListeners
  }

  /** Calls `listener` after every commit, in order; returns a function that stops it. */
  onCommit(listener: (block: Block, events: ChainEvent[]) => void): () => void {
    this.#commitListeners.add(listener)
    return () => this.#commitListeners.delete(listener)
  }

  static async create(options: NodeOptions): Promise<DonghaeNode> {
    const { genesis, key } = options
    const logger = options.logger ?? silentLogger()
    const clock = options.clock ?? systemClock
    const did = didFromEd25519PublicKey(key.publicKey)
    const stops: Array<() => Promise<void> | void> = []
    const commitListeners = new Set<(block: Block, events: ChainEvent[]) => void>()
    await mkdir(options.dataDir, { recursive: true })
    // the format record: a database from a newer release is refused, an older one migrated (db-format.ts)
    const store = await Store.open(join(options.dataDir, 'chain'), { logger, format: CHAIN_DB_FORMAT })
    stops.push(() => store.close())
    try {
      const machine = new StateMachine({
        chainId: genesis.chainId,
        modules: [
          bankModule,
          stakingModule(genesis.params),
          inferenceModule(genesis.params),
          expertsModule(genesis.params),
          governanceModule(genesis.params),
          arenaModule(genesis.params),
          flModule(genesis.params),
        ],
        fees: feeCollector,
        minFee: genesis.params.minFee,
      })
      const mempool = new Mempool(machine)
      let poh
      let pohGenerator: PohGenerator | undefined
      if (options.poh === 'inline') {
        poh = new InlinePohService(genesis.params.hashesPerTick)
      } else {
        const generator = new PohGenerator({
          hashesPerTick: genesis.params.hashesPerTick,
          ticksPerSecond: genesis.params.ticksPerSecond,
          // without empty blocks a height may wait a long time: tick for its first rounds, then rest
          maxTicks: genesis.params.emptyBlockIntervalMs > 0 ? ticksRequiredFor(genesis)(IDLE_POH_ROUNDS) : 0,
          // a generator resting for 20 s gives its thread back (about 15 MB) until it ticks again
          idleMs: options.pohIdleMs ?? POH_GENERATOR_IDLE_MS,
          // and starts a thread only for a height that lasts: a quick one makes its one tick itself
          threadDelayMs: options.pohThreadDelayMs ?? genesis.params.timeoutCommitMs + POH_THREAD_DELAY_MS,
          logger,
          clock,
        })
        pohGenerator = generator
        generator.start()
        stops.push(() => generator.stop())
        let verifier = options.verifier
        if (verifier === undefined) {
          verifier = new PohVerifier({ logger })
          verifier.start()
          const own = verifier
          stops.push(() => own.stop())
        }
        poh = new WorkerPohService(generator, verifier)
      }
      let verifyPool = options.verifyPool
      if (verifyPool === undefined) {
        verifyPool = new VerifyPool({ logger })
        verifyPool.start()
        const own = verifyPool
        stops.push(() => own.stop())
      }
      const app = await ChainApp.open({
        verifyPool,
        genesis,
        store,
        machine,
        mempool,
        poh,
        validatorSet: (state, height) => validatorSetAt(state, height, genesis.params),
        retainProofs: (height) => retainedProofKeys(height, genesis.params),
        proposer: proposerFor(genesis),
        ticksRequired: ticksRequiredFor(genesis),
        // the generator (worker PoH) prepares ticks only where a later round may need them
        ...(options.poh === 'inline' ? {} : { tickRounds: IDLE_POH_ROUNDS }),
        self: did,
        clock,
        logger,
        onCommit: (block, events) => {
          options.onCommit?.(block, events)
          for (const listener of [...commitListeners]) listener(block, events)
        },
      })
      const privval = options.validator === false ? undefined : new PrivValidator(key, new LevelSignStateStore(store))
      // The runtime reports evidence through the node's own-transaction queue, made just below.
      const built: { node?: DonghaeNode } = {}
      const runtime = new ChainRuntime({
        app,
        mempool,
        transport: options.transport,
        ...(privval === undefined ? {} : { privval }),
        submitOwnTx: async (kind, body) => {
          if (built.node === undefined) throw new InvalidInputError('the node is not built yet')
          return built.node.submitOwnTx(kind, body)
        },
        clock,
        logger,
        verifyPool,
        ...(options.gossipMs === undefined ? {} : { gossipMs: options.gossipMs }),
      })
      const ownTxs = new OwnTxQueue({
        key,
        chainId: genesis.chainId,
        fee: genesis.params.minFee, // unused: submitOwnTx passes the floor in force (governed chain.minFee)
        state: () => app.state,
        pendingFrom: (sender) => mempool.pendingFrom(sender),
        inMempool: (hash) => mempool.has(hash),
        dropFromMempool: (hash) => mempool.drop(hash),
        submit: (bytes) => runtime.submitTx(bytes),
        onAbandoned: (kind, nonce) =>
          logger
            .forComponent('donghae:node')
            .warn({ kind, nonce: nonce.toString() }, 'own transaction dropped by the chain; later ones re-signed'),
      })
      commitListeners.add(() => void ownTxs.committed())
      // and between commits: an idle chain makes none while the queue's gap keeps its work out
      const healing = new AbortController()
      repeat(clock, OWN_TX_HEAL_MS, () => ownTxs.committed(), {
        signal: healing.signal,
        onError: (err) => logger.forComponent('donghae:node').debug({ err: describeError(err) }, 'own-tx check failed'),
      })
      stops.push(() => healing.abort())
      built.node = new DonghaeNode({
        did,
        store,
        app,
        mempool,
        runtime,
        stops,
        moniker: options.moniker ?? did.slice(-8),
        transport: options.transport,
        ownTxs,
        commitListeners,
        pohGenerator,
      })
      return built.node
    } catch (err) {
      for (const stop of stops.reverse()) await stop()
      throw err
    }
  }

  start(): void {
    this.runtime.start()
  }

  /** Signs a transaction with the node's own key and submits it (see own-txs.ts). */
  submitOwnTx(kind: string, body: unknown, fee?: bigint): Promise<{ hash: Uint8Array; nonce: bigint }> {
    return this.ownTxs.submit(kind, body, fee ?? currentMinFee(this.app.state, this.app.genesis.params))
  }

  /** Stops consensus first, then PoH workers, then closes the database. */
  /** Stops consensus, then every part in reverse order, even past one that fails (see `stopAll`). */
  async stop(): Promise<void> {
    await stopAll([() => this.runtime.stop(), ...this.#stops.splice(0).reverse()])
  }

  /** The read/write surface the HTTP API serves. */
  readonly chainApi: ChainApi = {
    status: (): NodeStatus => {
      const head = this.app.head
      const consensus = this.runtime.consensus ?? {
        height: head.height + 1,
        round: 0,
        step: 'newHeight',
        waiting: false,
      }
      return {
        chainId: this.app.chainId,
        did: this.did,
        moniker: this.#moniker,
        height: head.height,
        latestBlockId: head.blockId,
        latestBlockTime: head.time,
        stateRoot: head.stateRoot,
        consensus: { height: consensus.height, round: consensus.round, step: consensus.step, idle: consensus.waiting },
        validators: this.app.validatorSet(head.height + 1).validators.map((v) => ({ did: v.did, power: v.power })),
        mempool: { size: this.mempool.size, bytes: this.mempool.bytes },
        peers: this.#transport.peers().length,
      }
    },
    block: async (height) => {
      const block = await this.app.getBlock(height)
      if (block === undefined) return undefined
      return { block, id: this.app.blockId(block), commit: await this.app.getCommit(height) }
    },
    account: (did): AccountView => {
      const state = this.app.state
      const record = validatorRecord(state, did)
      return {
        did,
        balance: balanceOf(state, did),
        nonce: accountNonce(state, did),
        stake:
          record === undefined
            ? null
            : {
                bonded: record.bonded,
                jailed: record.jailedUntil !== 0,
                jailedUntil: record.jailedUntil,
                tombstoned: record.tombstoned,
                unbonding: unbondingOf(state, did),
              },
      }
    },
    submitTx: async (bytes) => ({ hash: await this.runtime.submitTx(bytes) }),
    txOutcome: (hash) => this.app.txOutcome(hash),
    prove: (key) => {
      const tree = this.app.stateTree
      return { root: tree.root(), height: this.app.head.height, value: tree.get(key), proof: tree.prove(key) }
    },
    proveAt: (key, height) => this.app.provenAt(height, key),
    genesisDoc: () => this.app.genesis,
  }

  toString(): string {
    return `DonghaeNode(${this.#moniker}, ${toHex(this.app.head.blockId).slice(0, 8)})`
  }
}
