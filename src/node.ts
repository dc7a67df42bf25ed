/**
 * The composition root: builds a Donghae node from its parts, starts them in order and stops
 * them in reverse. Read it as the table of contents of a running node.
 *
 *   store (LevelDB) → state machine (bank, staking) → mempool → PoH (worker generator + verifier)
 *   → chain app → private validator → chain runtime (consensus, gossip, sync) → HTTP API
 */
import { join } from 'node:path'
import { mkdir } from 'node:fs/promises'
import { systemClock, type Clock } from './core/clock.ts'
import { silentLogger, type Logger } from './core/logger.ts'
import { toHex } from './core/bytes.ts'
import { InvalidInputError } from './core/errors.ts'
import type { Ed25519KeyPair } from './identity/keys.ts'
import { VerifyPool } from './identity/verify-pool.ts'
import { didFromEd25519PublicKey } from './identity/did-key.ts'
import { Store } from './store/store.ts'
import { ChainApp } from './chain/app.ts'
import { StateMachine } from './chain/host.ts'
import { Mempool } from './chain/mempool.ts'
import type { GenesisDoc } from './chain/genesis.ts'
import { InlinePohService, WorkerPohService } from './chain/poh-service.ts'
import { PohGenerator } from './chain/poh/generator.ts'
import { PohVerifier } from './chain/poh/verifier.ts'
import { LevelSignStateStore, PrivValidator } from './chain/bft/privval.ts'
import { ChainRuntime, proposerFor, ticksRequiredFor } from './chain/runtime.ts'
import type { PeerTransport } from './core/transport.ts'
import type { ChainEvent } from './chain/host.ts'
import type { Block } from './chain/block.ts'
import { bankModule, feeCollector, balanceOf } from './bank/bank.ts'
import { stakingModule, validatorSetAt, validatorRecord, unbondingOf } from './staking/staking.ts'
import { inferenceModule } from './inference/module.ts'
import { accountNonce } from './chain/host.ts'
import { encodeTx, signTx } from './chain/tx.ts'
import type { AccountView, ChainApi, NodeStatus } from './api/chain-api.ts'
import type { NatView, NetApi } from './api/net-api.ts'
import { createApiServer } from './api/server.ts'
import type { FastifyInstance } from 'fastify'
import type { DonghaeConfig } from './core/config.ts'
import { didFromPeerId } from './identity/peer-id.ts'
import { createHost, type DonghaeHost } from './net/host.ts'
import { Libp2pTransport } from './net/libp2p-transport.ts'
import { NetworkService } from './net/network.ts'
import type { MappingStatus } from './net/nat/manager.ts'
import { EventBus } from './api/events.ts'
import { NodeMetrics } from './api/metrics.ts'
import { publishCommit, watchNat, watchPeers } from './api/node-events.ts'
import type { OperatorApi } from './api/operator-api.ts'
import { DASHBOARD_DIR } from './api/server.ts'
import { NodeInference } from './node-inference.ts'
import type { WorkerBehaviour } from './inference/service.ts'
import type { ExecutionProviderChoice } from './inference/runtime.ts'

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

export class DonghaeNode {
  readonly did: string
  readonly store: Store
  readonly app: ChainApp
  readonly mempool: Mempool
  readonly runtime: ChainRuntime
  readonly #stops: Array<() => Promise<void> | void>
  readonly #moniker: string
  readonly #transport: PeerTransport
  readonly #key: Ed25519KeyPair
  #ownNonce = 0n
  #ownQueue: Promise<unknown> = Promise.resolve()

  private constructor(parts: {
    did: string
    store: Store
    app: ChainApp
    mempool: Mempool
    runtime: ChainRuntime
    stops: Array<() => Promise<void> | void>
    moniker: string
    transport: PeerTransport
    key: Ed25519KeyPair
  }) {
    this.did = parts.did
    this.store = parts.store
    this.app = parts.app
    this.mempool = parts.mempool
    this.runtime = parts.runtime
    this.#stops = parts.stops
    this.#moniker = parts.moniker
    this.#transport = parts.transport
    this.#key = parts.key
  }

  static async create(options: NodeOptions): Promise<DonghaeNode> {
    const { genesis, key } = options
    const logger = options.logger ?? silentLogger()
    const clock = options.clock ?? systemClock
    const did = didFromEd25519PublicKey(key.publicKey)
    const stops: Array<() => Promise<void> | void> = []
    await mkdir(options.dataDir, { recursive: true })
    const store = await Store.open(join(options.dataDir, 'chain'), { logger })
    stops.push(() => store.close())
    try {
      const machine = new StateMachine({
        chainId: genesis.chainId,
        modules: [bankModule, stakingModule(genesis.params), inferenceModule(genesis.params)],
        fees: feeCollector,
        minFee: genesis.params.minFee,
      })
      const mempool = new Mempool(machine)
      let poh
      if (options.poh === 'inline') {
        poh = new InlinePohService(genesis.params.hashesPerTick)
      } else {
        const generator = new PohGenerator({
          hashesPerTick: genesis.params.hashesPerTick,
          ticksPerSecond: genesis.params.ticksPerSecond,
          logger,
        })
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
        proposer: proposerFor(genesis),
        ticksRequired: ticksRequiredFor(genesis),
        self: did,
        clock,
        logger,
        ...(options.onCommit === undefined ? {} : { onCommit: options.onCommit }),
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
      built.node = new DonghaeNode({
        did,
        store,
        app,
        mempool,
        runtime,
        stops,
        moniker: options.moniker ?? did.slice(-8),
        transport: options.transport,
        key,
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

  /**
   * Signs a transaction with the node's own key and submits it. Callers are served one at a
   * time and nonces follow on from the ones still pending, so concurrent callers (settlement,
   * operator transfers, audits) never collide; with nothing pending the next nonce comes from
   * state, so a transaction that was dropped leaves no gap behind.
   */
  submitOwnTx(kind: string, body: unknown, fee?: bigint): Promise<{ hash: Uint8Array; nonce: bigint }> {
    const run = async (): Promise<{ hash: Uint8Array; nonce: bigint }> => {
      const fromState = accountNonce(this.app.state, this.did)
      const pending = this.mempool.pendingFrom(this.did) > 0
      const nonce = pending && this.#ownNonce > fromState ? this.#ownNonce : fromState
      const tx = signTx(this.#key, {
        chainId: this.app.chainId,
        nonce,
        fee: fee ?? this.app.genesis.params.minFee,
        kind,
        body,
      })
      const hash = await this.runtime.submitTx(encodeTx(tx))
      this.#ownNonce = nonce + 1n
      return { hash, nonce }
    }
    const result = this.#ownQueue.then(run, run)
    this.#ownQueue = result.catch(() => undefined)
    return result
  }

  /** Stops consensus first, then PoH workers, then closes the database. */
  async stop(): Promise<void> {
    await this.runtime.stop()
    for (const stop of this.#stops.splice(0).reverse()) await stop()
  }

  /** The read/write surface the HTTP API serves. */
  readonly chainApi: ChainApi = {
    status: (): NodeStatus => {
      const head = this.app.head
      const consensus = this.runtime.consensus ?? { height: head.height + 1, round: 0, step: 'newHeight' }
      return {
        chainId: this.app.chainId,
        did: this.did,
        moniker: this.#moniker,
        height: head.height,
        latestBlockId: head.blockId,
        latestBlockTime: head.time,
        stateRoot: head.stateRoot,
        consensus: { height: consensus.height, round: consensus.round, step: consensus.step },
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
  }

  toString(): string {
    return `DonghaeNode(${this.#moniker}, ${toHex(this.app.head.blockId).slice(0, 8)})`
  }
}

// ---- a node on the real network ---------------------------------------------------------------

/** The API's view of the port-mapping state. */
function natView(mode: DonghaeConfig['nat'], status: MappingStatus | undefined): NatView {
  if (mode === 'off') return { method: 'off', reason: 'port mapping is off (config nat = off)' }
  const mapping = status?.mapping
  if (mapping !== undefined) {
    return {
      method: mapping.method,
      externalAddress: `${mapping.externalAddress}:${mapping.externalPort}`,
      leaseSeconds: mapping.leaseSeconds,
    }
  }
  const reason = status?.reason ?? (status === undefined ? 'waiting for the p2p listener' : `state ${status.state}`)
  return {
    method: 'none',
    reason: `no port mapping available: ${reason}; peers outside this network cannot dial this node (it can still dial out, and relay through peers)`,
  }
}

export interface FullNodeOptions {
  /** Data directory: chain database in `chain/`, peer store in `p2p/`. */
  dataDir: string
  genesis: GenesisDoc
  key: Ed25519KeyPair
  config: Pick<
    DonghaeConfig,
    'p2pPort' | 'listenHost' | 'apiPort' | 'apiHost' | 'bootstrap' | 'mdns' | 'moniker' | 'nat'
  >
  /** Extra multiaddrs to announce (the router's external address). */
  announce?: string[]
  logger?: Logger
  /** Called on every commit. */
  onCommit?(block: Block, events: ChainEvent[]): void
  /** The inference market: serve models as a worker, extra model folders, worker slots. */
  inference?: {
    /** Serve models to the network (a worker must also be bonded on chain). @default true */
    worker?: boolean
    slots?: number
    /** Folders whose `*.onnx` files are imported into the blob store (e.g. `<home>/models`). */
    modelDirs?: string[]
    /** Misbehave on purpose (tests of the audit system only). */
    behaviour?: WorkerBehaviour
    /** Share of gateway jobs followed by a canary, ppm. */
    canaryPpm?: number
    /** ONNX Runtime execution provider. @default 'auto' (CoreML on macOS, CUDA when installed, CPU) */
    executionProvider?: ExecutionProviderChoice
  }
  /** The API's operator token (`<home>/api-token`); without it operator routes answer 401. */
  apiToken?: string
  /** The built dashboard, served at `/`. @default DASHBOARD_DIR (web/dist of the checkout) */
  dashboardDir?: string
  /** Browser origins allowed to call the API (CORS; config apiCors). @default none */
  cors?: string[]
}

/** The DID of a libp2p peer ('' for a peer whose key is not Ed25519). */
function peerDid(peerId: unknown): string {
  try {
    return didFromPeerId(peerId as Parameters<typeof didFromPeerId>[0])
  } catch {
    return ''
  }
}

/**
 * A node on libp2p with its HTTP API: host → chain transport → DonghaeNode → discovery and DID
 * record → API server. `stop()` undoes them in reverse order.
 */
export class FullNode {
  readonly node: DonghaeNode
  readonly host: DonghaeHost
  readonly network: NetworkService
  readonly api: FastifyInstance
  readonly apiUrl: string
  /** What happens on this node (blocks, finality, jobs, peers, NAT, slashes): the SSE stream's source. */
  readonly events: EventBus
  /** The inference market on this node (worker, gateway, settlement, audits). */
  readonly inference: NodeInference
  /** This node's Prometheus metrics (GET /metrics). */
  readonly metrics: NodeMetrics
  readonly #stops: Array<() => Promise<void> | void>

  private constructor(parts: {
    node: DonghaeNode
    host: DonghaeHost
    network: NetworkService
    api: FastifyInstance
    apiUrl: string
    events: EventBus
    metrics: NodeMetrics
    inference: NodeInference
    stops: Array<() => Promise<void> | void>
  }) {
    this.node = parts.node
    this.host = parts.host
    this.network = parts.network
    this.api = parts.api
    this.apiUrl = parts.apiUrl
    this.events = parts.events
    this.inference = parts.inference
    this.metrics = parts.metrics
    this.#stops = parts.stops
  }

  static async start(options: FullNodeOptions): Promise<FullNode> {
    const { config, genesis, key } = options
    const logger = options.logger ?? silentLogger()
    const stops: Array<() => Promise<void> | void> = []
    const unwind = async (): Promise<void> => {
      for (const stop of stops.splice(0).reverse()) await stop()
    }
    const events = new EventBus()
    const metrics = new NodeMetrics()
    stops.push(metrics.attach(events))
    try {
      await mkdir(join(options.dataDir, 'p2p'), { recursive: true })
      const host = await createHost({
        key,
        host: config.listenHost,
        port: config.p2pPort,
        bootstrap: config.bootstrap,
        mdns: config.mdns,
        announce: options.announce ?? [],
        datastorePath: join(options.dataDir, 'p2p'),
        nat: config.nat,
        relayServer: true,
        logger,
      })
      await host.start()
      stops.push(() => host.stop())
      stops.push(watchPeers(events, host, peerDid))
      const transport = new Libp2pTransport(host, { chainId: genesis.chainId, logger })
      transport.start()
      stops.push(() => transport.stop())
      const node = await DonghaeNode.create({
        dataDir: options.dataDir,
        genesis,
        key,
        transport,
        moniker: config.moniker,
        logger,
        onCommit: (block, chainEvents) => {
          publishCommit(events, block, chainEvents, Date.now())
          options.onCommit?.(block, chainEvents)
        },
      })
      stops.push(() => node.stop())
      const apiUrl = `http://${config.apiHost}:${config.apiPort}`
      const network = new NetworkService({
        host,
        key,
        bootstrap: config.bootstrap,
        logger,
        services: () => [{ id: `${node.did}#api`, type: 'DonghaeNodeApi', serviceEndpoint: apiUrl }],
      })
      const net: NetApi = {
        peerId: () => host.peerId.toString(),
        addresses: () => host.getMultiaddrs().map(String),
        peers: () =>
          host.getConnections().map((c) => {
            let did = ''
            try {
              did = didFromPeerId(c.remotePeer)
            } catch {
              // not an Ed25519 peer
            }
            return { did, peerId: c.remotePeer.toString(), addresses: [c.remoteAddr.toString()] }
          }),
        nat: () => {
          const relay = host.services.relayFallback?.status().relay
          return { ...natView(config.nat, host.services.nat?.status()), ...(relay === undefined ? {} : { relay }) }
        },
        resolveDid: (did) => network.resolveDid(did),
      }
      stops.push(watchNat(events, net.nat))
      const inference = await NodeInference.create({
        node,
        key,
        transport,
        adverts: transport,
        dataDir: options.dataDir,
        ...(options.inference?.modelDirs === undefined ? {} : { modelDirs: options.inference.modelDirs }),
        ...(options.inference?.worker === undefined ? {} : { worker: options.inference.worker }),
        ...(options.inference?.slots === undefined ? {} : { slots: options.inference.slots }),
        ...(options.inference?.behaviour === undefined ? {} : { behaviour: options.inference.behaviour }),
        ...(options.inference?.canaryPpm === undefined ? {} : { canaryPpm: options.inference.canaryPpm }),
        ...(options.inference?.executionProvider === undefined
          ? {}
          : { executionProvider: options.inference.executionProvider }),
        logger,
        onJob: (job) => {
          metrics.jobCompleted({ model: job.model, latencySeconds: job.latencyMs / 1000, ok: job.ok, role: job.role })
          if (job.role === 'gateway')
            events.publish('job', {
              id: job.id,
              model: job.model,
              worker: job.worker,
              latencyMs: job.latencyMs,
              ok: job.ok,
              fee: job.fee,
            })
        },
        onAudit: (audit) => metrics.audit({ result: audit.result }),
      })
      stops.push(() => inference.stop())
      const operator: OperatorApi = {
        did: node.did,
        transfer: ({ to, amount, memo, fee }) =>
          node.submitOwnTx('bank.transfer', memo === undefined ? { to, amount } : { to, amount, memo }, fee),
      }
      const api = createApiServer({
        chain: node.chainApi,
        net,
        logger,
        events,
        metrics,
        operator,
        inference,
        dashboardDir: options.dashboardDir ?? DASHBOARD_DIR,
        ...(options.cors === undefined ? {} : { cors: options.cors }),
        ...(options.apiToken === undefined ? {} : { operatorToken: options.apiToken }),
      })
      stops.push(() => api.close())
      await api.listen({ host: config.apiHost, port: config.apiPort })
      node.start()
      network.start()
      stops.push(() => network.stop())
      inference.start()
      metrics.blockCommitted({ height: node.app.head.height, txs: 0 })
      return new FullNode({ node, host, network, api, apiUrl, events, metrics, inference, stops })
    } catch (err) {
      await unwind()
      throw err
    }
  }

  async stop(): Promise<void> {
    for (const stop of this.#stops.splice(0).reverse()) await stop()
  }
}
