/**
 * A simulated network for the inference components: one chain (the real StateMachine with the
 * bank, staking and inference modules, executing real signed transactions block by block), one
 * manual clock, the in-memory transport, a seeded random stream per node. Nodes are built with
 * `createInference` exactly as a real node builds them; only time, the network and block ids are
 * simulated, so every run is a pure function of its seed.
 *
 * Block h's id is sha256("donghae/sim/<seed>" || h): nobody can predict it before the block.
 * Transactions a node submits are signed with its key and the sender's next nonce when the block
 * that includes them executes (a perfect own-transaction queue).
 */
import { sha256 } from '../../core/hash.ts'
import { utf8 } from '../../core/bytes.ts'
import { ManualClock } from '../../core/clock.ts'
import { silentLogger, type Logger } from '../../core/logger.ts'
import { createRng, type Rng } from '../../core/rng.ts'
import type { Ed25519KeyPair } from '../../identity/keys.ts'
import { didFromEd25519PublicKey } from '../../identity/did-key.ts'
import type { GenesisDoc } from '../../chain/genesis.ts'
import { accountNonce, StateMachine, type ChainEvent } from '../../chain/host.ts'
import { currentMinFee } from '../../chain/governed.ts'
import { StateOverlay } from '../../chain/state-view.ts'
import { SparseMerkleTree } from '../../chain/state/smt.ts'
import { TxError } from '../../chain/errors.ts'
import { combineVerdicts, type GossipHandler, type GossipVerdict } from '../../core/transport.ts'
import { MemoryHub } from '../../net/memory-transport.ts'
import { decodeTx, encodeTx, signTx, txHash } from '../../chain/tx.ts'
import { bankModule, feeCollector } from '../../bank/bank.ts'
import { stakingModule, validatorSetAt } from '../../staking/staking.ts'
import { inferenceModule } from '../chain/module.ts'
import type { AdvertBus, ChainView, InferenceComponents, ModelRunner } from '../components.ts'
import { createInference, type Inference, type InferenceInit } from '../index.ts'

export const SIM_BLOCK_MS = 1_000

interface Queued {
  key: Ed25519KeyPair
  kind: string
  body: unknown
}

export interface SimNode {
  did: string
  inference: Inference
  components: InferenceComponents
}

/** Counts work in flight, so the simulation can wait until every component is idle. */
class Busy {
  count = 0
  track<T>(work: Promise<T>): Promise<T> {
    this.count++
    return work.finally(() => this.count--)
  }
}

export class SimNetwork {
  readonly clock: ManualClock
  readonly hub = new MemoryHub()
  readonly genesis: GenesisDoc
  readonly #machine: StateMachine
  readonly #state: StateOverlay
  readonly #rng: Rng
  readonly #seedBytes: Uint8Array
  readonly #listeners = new Set<(height: number, events: readonly ChainEvent[]) => void>()
  readonly #adverts = new Map<string, Set<GossipHandler>>()
  readonly #busy = new Busy()
  readonly #controller = new AbortController()
  readonly #log: Logger
  #queue: Queued[] = []
  #height = 0
  #time: number
  /** Transactions the chain refused, by `kind:reason`. */
  readonly refused: Record<string, number> = {}
  /** Requests the nodes sent, by the DID they were sent to (answered or not, reachable or not). */
  readonly requestsTo = new Map<string, number>()

  constructor(options: { seed: number; genesis: GenesisDoc; logger?: Logger }) {
    this.genesis = options.genesis
    this.#rng = createRng(options.seed)
    this.#seedBytes = utf8(`donghae/sim/${options.seed}`)
    this.#time = options.genesis.genesisTime
    this.clock = new ManualClock(options.genesis.genesisTime)
    this.#log = options.logger ?? silentLogger()
    this.#machine = new StateMachine({
      chainId: options.genesis.chainId,
      modules: [bankModule, stakingModule(options.genesis.params), inferenceModule(options.genesis.params)],
      fees: feeCollector,
      minFee: options.genesis.params.minFee,
    })
    this.#state = new StateOverlay(SparseMerkleTree.empty())
    this.#machine.initGenesis(this.#state, options.genesis)
  }

  get height(): number {
    return this.#height
  }

  get state(): StateOverlay {
    return this.#state
  }

  /** Every commit's events, for the simulation's own accounting. */
  onCommit(listener: (height: number, events: readonly ChainEvent[]) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Builds a node with `createInference`, wired to this network; call `inference.start()` next. */
  addNode(key: Ed25519KeyPair, init: InferenceInit): SimNode {
    const did = didFromEd25519PublicKey(key.publicKey)
    const transport = this.hub.join(did)
    const busy = this.#busy
    const chain: ChainView = {
      chainId: this.genesis.chainId,
      params: this.genesis.params,
      state: () => this.#state,
      height: () => this.#height,
      time: () => this.#time,
      onCommit: (listener) => this.onCommit(listener),
      blockId: (height) => (height <= this.#height ? this.blockId(height) : undefined),
    }
    const adverts: AdvertBus = {
      publish: (topic, data) => void this.publishAdvert(did, topic, data),
      subscribe: (topic, handler) => {
        const set = this.#adverts.get(topic) ?? new Set()
        this.#adverts.set(topic, set)
        const own: GossipHandler = (data, from) => (from === did ? 'ignore' : handler(data, from))
        set.add(own)
        return () => set.delete(own)
      },
    }
    const components: InferenceComponents = {
      key,
      chain,
      submitTx: async (kind, body) => {
        this.#queue.push({ key, kind, body })
        return { hash: sha256(utf8(`${did}/${this.#queue.length}/${this.#height}`)) }
      },
      transport: {
        self: did,
        request: (peer, protocol, data, options) => {
          this.requestsTo.set(peer, (this.requestsTo.get(peer) ?? 0) + 1)
          return busy.track(transport.request(peer, protocol, data, options))
        },
        handle: (protocol, handler) => transport.handle(protocol, handler),
        peers: () => transport.peers(),
        penalize: (peer, reason) => transport.penalize(peer, reason),
      },
      adverts,
      clock: this.clock,
      rng: this.#rng.fork(did),
      logger: this.#log,
      signal: this.#controller.signal,
    }
    const tracked =
      init.worker === undefined
        ? init
        : { ...init, worker: { ...init.worker, runner: trackRunner(init.worker.runner, busy) } }
    return { did, inference: createInference(tracked)(components), components }
  }

  /**
   * Gossips an advert as `from` to every node at once (the in-memory network reaches everyone, so
   * nothing is relayed); the verdicts combined as one node's transport would combine them.
   */
  async publishAdvert(from: string, topic: string, data: Uint8Array): Promise<GossipVerdict> {
    const verdicts = await Promise.all([...(this.#adverts.get(topic) ?? [])].map((handler) => handler(data, from)))
    return combineVerdicts(verdicts)
  }

  /** Queues a transaction signed by `key` for the next block (clients and attackers outside the components). */
  submit(key: Ed25519KeyPair, kind: string, body: unknown): void {
    this.#queue.push({ key, kind, body })
  }

  /** Lets every component finish what it started (requests, model runs, their follow-ups). */
  async quiesce(): Promise<void> {
    let idle = 0
    while (idle < 3) {
      await new Promise((resolve) => setImmediate(resolve))
      if (this.#busy.count === 0) idle++
      else idle = 0
    }
  }

  /** Executes the next block: begin, every queued transaction in order, end; then tells the listeners. */
  commit(): readonly ChainEvent[] {
    const height = this.#height + 1
    const time = this.genesis.genesisTime + height * SIM_BLOCK_MS
    const info = {
      chainId: this.genesis.chainId,
      height,
      time,
      proposer: this.genesis.validators[0]?.did ?? '',
      parentId: this.blockId(height - 1),
      validators: validatorSetAt(this.#state, height, this.genesis.params),
      lastCommitSigners: null,
    }
    const events: ChainEvent[] = []
    const emit = (e: ChainEvent): void => void events.push(e)
    this.#machine.beginBlock(this.#state, { ...info, emit })
    const queue = this.#queue
    this.#queue = []
    for (const tx of queue) this.#deliver(tx, info, emit)
    this.#machine.endBlock(this.#state, { ...info, emit })
    this.#height = height
    this.#time = time
    for (const listener of [...this.#listeners]) listener(height, events)
    return events
  }

  /** Block ids nobody can predict before the block. */
  blockId(height: number): Uint8Array {
    const h = new Uint8Array(4)
    new DataView(h.buffer).setUint32(0, height)
    return sha256(this.#seedBytes, h)
  }

  #deliver(
    tx: Queued,
    info: Omit<Parameters<StateMachine['deliver']>[2], 'txHash'>,
    emit: (e: ChainEvent) => void,
  ): void {
    const sender = didFromEd25519PublicKey(tx.key.publicKey)
    const nonce = accountNonce(this.#state, sender)
    const bytes = encodeTx(
      signTx(tx.key, {
        chainId: this.genesis.chainId,
        nonce,
        fee: currentMinFee(this.#state, this.genesis.params),
        kind: tx.kind,
        body: tx.body,
      }),
    )
    let reason: string
    try {
      const result = this.#machine.deliver(this.#state, decodeTx(bytes), { ...info, txHash: txHash(bytes) }, emit, {
        signatureChecked: true,
      })
      if (result.ok) return
      // Included as failed: the fee is paid, the body changed nothing.
      reason = result.error.reason
    } catch (err) {
      if (!(err instanceof TxError)) throw err
      reason = err.reason
    }
    const key = `${tx.kind}:${reason}`
    this.refused[key] = (this.refused[key] ?? 0) + 1
  }

  /** Stops every node's timers and listeners. */
  close(): void {
    this.#controller.abort()
    this.#listeners.clear()
  }
}

/** The runner, with its calls counted as work in flight. */
function trackRunner(runner: ModelRunner, busy: Busy): ModelRunner {
  return {
    get ep() {
      return runner.ep
    },
    get runtime() {
      return runner.runtime
    },
    has: (cid) => runner.has(cid),
    load: (cid, bytes, options) => busy.track(runner.load(cid, bytes, options)),
    run: (cid, inputs, options) => busy.track(runner.run(cid, inputs, options)),
    calibrate: (cid, inputs, options) => busy.track(runner.calibrate(cid, inputs, options)),
    ...(runner.unload === undefined ? {} : { unload: (cid: string) => busy.track(runner.unload!(cid)) }),
  }
}
