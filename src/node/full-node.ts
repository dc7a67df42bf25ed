/**
 * The composition root of a node on the real network. `FullNode.start` is the table of contents
 * of a running node; every part it starts is stopped in reverse order, and one `AbortController`
 * is the signal every long-running component watches:
 *
 *   metrics + event bus -> libp2p host -> transport -> chain node (store, consensus, mempool, own
 *   transactions) -> discovery -> inference market (blobs, runtime, worker, gateway, settler,
 *   auditor) -> experts (hosting, MoE chat, Proof-of-Learning) -> DID directory (when configured) ->
 *   HTTP API -> start consensus, discovery, inference, experts
 */
import { join } from 'node:path'
import { mkdir } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import { silentLogger, type Logger } from '../core/logger.ts'
import type { DonghaeConfig } from '../core/config.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import type { ChainEvent } from '../chain/host.ts'
import type { Block } from '../chain/block.ts'
import type { GenesisDoc } from '../chain/genesis.ts'
import { createHost, type DonghaeHost } from '../net/host.ts'
import { Libp2pTransport } from '../net/libp2p-transport.ts'
import { StunServer } from '../net/stun.ts'
import { NetworkService } from '../net/network.ts'
import type { WorkerBehaviour } from '../inference/components.ts'
import type { ExecutionProviderChoice } from '../inference/runtime-facts.ts'
import { parseServePolicy } from '../inference/serve-policy.ts'
import { EventBus } from '../api/events.ts'
import { NodeMetrics } from '../api/metrics.ts'
import { publishCommit, watchNat, watchPeers } from '../api/node-events.ts'
import type { OperatorApi } from '../api/operator-api.ts'
import { createApiServer, DASHBOARD_DIR } from '../api/server.ts'
import { DonghaeNode, stopAll } from './chain-node.ts'
import { NodeInference } from './inference.ts'
import { NodeExperts } from './experts.ts'
import { NodeWebRtc } from './webrtc.ts'
import { NodeDirectory, SIGNALLING_PATH } from './directory.ts'
import { NodeWallet, nodeChainSource } from './wallet.ts'
import { NodeFl } from './fl.ts'
import { NodeGovernance } from './governance.ts'
import { NodeArena } from './arena.ts'
import type { ScryptParams } from '../wallet/ledger.ts'
import { multiaddr } from '@multiformats/multiaddr'
import { didFromPeerId, peerIdFromDid } from '../identity/peer-id.ts'
import { describeError } from '../core/errors.ts'
import { netApi, peerDid } from './adapters.ts'
import { ResourceSampler } from './resources.ts'

export interface FullNodeOptions {
  /** Data directory: chain database in `chain/`, peer store in `p2p/`, blobs in `blobs/`. */
  dataDir: string
  genesis: GenesisDoc
  key: Ed25519KeyPair
  config: Pick<
    DonghaeConfig,
    | 'p2pPort'
    | 'transport'
    | 'listenHost'
    | 'apiPort'
    | 'apiHost'
    | 'bootstrap'
    | 'mdns'
    | 'moniker'
    | 'nat'
    | 'worker'
    | 'workerSlots'
    | 'workerMemory'
    | 'modelStorage'
    | 'executionProvider'
    | 'canaryPpm'
    | 'runner'
    | 'serve'
    | 'expertReplicas'
    | 'expertMemory'
    | 'expertTraining'
    | 'webrtc'
    | 'iceServers'
    | 'stunPort'
    | 'webrtcDirect'
    | 'directory'
    | 'walletMailbox'
  >
  /** Extra multiaddrs to announce (the router's external address). */
  announce?: string[]
  logger?: Logger
  /** Called on every commit. */
  onCommit?(block: Block, events: ChainEvent[]): void
  /** The inference market beyond the config: model folders, deliberate misbehaviour for tests. */
  inference?: {
    /** Folders whose `*.onnx` files are imported into the blob store (e.g. `<home>/models`). */
    modelDirs?: string[]
    /** Misbehave on purpose (tests of the audit system only). */
    behaviour?: WorkerBehaviour
  }
  /** The API's operator token (`<home>/api-token`); without it operator routes answer 401. */
  apiToken?: string
  /** The built dashboard, served at `/`. @default DASHBOARD_DIR (web/dist of the checkout) */
  dashboardDir?: string
  /** Browser origins allowed to call the API (CORS; config apiCors). @default none */
  cors?: string[]
  /** Host names the API answers for besides loopback and its own address (config apiAllowedHosts). @default none */
  allowedHosts?: string[]
  /** Requests per client address per minute (config apiRateLimit). @default DEFAULT_RATE_LIMIT.max */
  rateLimitPerMinute?: number
  /**
   * The wallet (src/wallet/): its ledger in `<data>/wallet/` is encrypted under a key derived from
   * `password` (the keystore's). Without it the node runs no wallet and its routes answer 503.
   */
  wallet?: {
    password: string
    /** Keep a mailbox for other people's envelopes (config walletMailbox). @default true */
    mailbox?: boolean
    /** scrypt parameters of a new ledger. */
    scrypt?: ScryptParams
  }
}

/** A node on libp2p with the inference market and its HTTP API. `stop()` undoes `start()` in reverse. */
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
  /** The Mixture-of-Experts families on this node (hosting, MoE chat, Proof-of-Learning, mining). */
  readonly experts: NodeExperts
  /** This node's Prometheus metrics (GET /metrics). */
  readonly metrics: NodeMetrics
  readonly #controller: AbortController
  readonly #stops: Array<() => Promise<void> | void>

  private constructor(
    parts: Pick<
      FullNode,
      'node' | 'host' | 'network' | 'api' | 'apiUrl' | 'events' | 'inference' | 'experts' | 'metrics'
    >,
    controller: AbortController,
    stops: Array<() => Promise<void> | void>,
  ) {
    this.node = parts.node
    this.host = parts.host
    this.network = parts.network
    this.api = parts.api
    this.apiUrl = parts.apiUrl
    this.events = parts.events
    this.inference = parts.inference
    this.experts = parts.experts
    this.metrics = parts.metrics
    this.#controller = controller
    this.#stops = stops
  }

  static async start(options: FullNodeOptions): Promise<FullNode> {
    const { config, genesis, key } = options
    const logger = options.logger ?? silentLogger()
    const controller = new AbortController()
    const stops: Array<() => Promise<void> | void> = []
    const unwind = async (): Promise<void> => {
      controller.abort()
      for (const stop of stops.splice(0).reverse()) await stop()
    }
    try {
      const events = new EventBus()
      const metrics = new NodeMetrics()
      stops.push(metrics.attach(events))
      // CPU, memory, event-loop delay and block interval over the last hour (GET /v1/node/resources)
      const resources = new ResourceSampler()
      resources.start()
      stops.push(() => resources.stop())

      await mkdir(join(options.dataDir, 'p2p'), { recursive: true })
      const host = await createHost({
        key,
        host: config.listenHost,
        port: config.p2pPort,
        transports: config.transport,
        bootstrap: config.bootstrap,
        mdns: config.mdns,
        announce: options.announce ?? [],
        datastorePath: join(options.dataDir, 'p2p'),
        nat: config.nat,
        relayServer: true,
        webrtc: true,
        iceServers: config.iceServers,
        webrtcDirect: config.webrtcDirect,
        logger,
      })
      await host.start()
      stops.push(() => host.stop())
      if (config.stunPort !== 0) {
        // a STUN responder for the peers' ICE (config stunPort; docs/webrtc-transport.md)
        const stun = new StunServer({ host: config.listenHost, port: config.stunPort, logger })
        await stun.start()
        stops.push(() => stun.stop())
      }
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
          resources.blockCommitted(block.header.height)
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
      const net = netApi(host, network, config.nat)
      stops.push(watchNat(events, net.nat))

      const inference = await NodeInference.create({
        node,
        key,
        transport,
        adverts: transport,
        dataDir: options.dataDir,
        signal: controller.signal,
        // model files in the content store: UnixFS blocks over bitswap on this host
        libp2p: host,
        modelStorageBytes: config.modelStorage,
        onFetch: (view) => events.publish('model.fetch', view),
        worker: config.worker,
        slots: config.workerSlots,
        ...(config.workerMemory > 0 ? { memoryBudget: config.workerMemory * 2 ** 20 } : {}),
        executionProvider: config.executionProvider as ExecutionProviderChoice,
        canaryPpm: config.canaryPpm,
        runner: config.runner,
        serve: parseServePolicy(config.serve),
        ...(options.inference?.modelDirs === undefined ? {} : { modelDirs: options.inference.modelDirs }),
        ...(options.inference?.behaviour === undefined ? {} : { behaviour: options.inference.behaviour }),
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

      const experts = await NodeExperts.create({
        node,
        key,
        transport,
        files: inference.blobs,
        libp2p: host,
        replicas: config.expertReplicas,
        memoryBytes: config.expertMemory * 2 ** 20,
        training: config.expertTraining,
        logger,
        signal: controller.signal,
      })
      stops.push(() => experts.stop())

      // FL Alliance (issue 15): tasks and rounds from the chain, their blobs in the content store
      const fl = new NodeFl({
        chain: { state: () => node.app.state, height: () => node.app.head.height },
        files: inference.blobs,
        logger,
      })
      // AI Arena (issue 15): tasks, trainer and validator roles driven by commits, weights in the content store
      const arena = new NodeArena({
        node,
        files: inference.blobs,
        peers: () => transport.peers().filter((p) => p !== node.did),
        dataDir: options.dataDir,
        logger,
      })
      await arena.start()
      stops.push(() => arena.stop())
      // governance (issue 15): proposals, tallies and the governed parameters, from the chain's state
      const governance = new NodeGovernance({
        state: () => node.app.state,
        height: () => node.app.head.height,
        genesis,
      })

      // the DID directory (config directory): an index in the data dir, gossip on this transport,
      // DID records from the DHT for `resolve`, the node's key for its own entry
      const directory = config.directory
        ? new NodeDirectory({
            dataDir: options.dataDir,
            transport,
            resolveDid: (did, opts) => network.resolveDid(did, opts),
            key,
            endpoint: () => `${apiUrl}${SIGNALLING_PATH}`,
            addresses: () => host.getMultiaddrs().map(String),
            logger,
          })
        : undefined
      if (directory !== undefined) {
        directory.start()
        stops.push(() => directory.stop())
      }

      // signed WebRTC offers (POST /v1/webrtc/offer) answered with data channels that serve the
      // node's language model (config webrtc, iceServers)
      const webrtc = config.webrtc
        ? new NodeWebRtc({ key, inference, iceServers: config.iceServers, logger })
        : undefined
      if (webrtc !== undefined) stops.push(() => webrtc.stop())

      // the wallet (issue 14): payments with sealed details delivered peer to peer, the encrypted ledger
      const walletOptions = options.wallet
      const wallet =
        walletOptions === undefined
          ? undefined
          : await NodeWallet.open({
              chain: nodeChainSource(node),
              key,
              dataDir: options.dataDir,
              password: walletOptions.password,
              transport,
              locate: async (did, signal) => {
                const record = await network.resolveDid(did, { signal })
                if (record === undefined || record.addresses.length === 0) return
                const multiaddrs = record.addresses.flatMap((a) => {
                  try {
                    return [multiaddr(a)]
                  } catch {
                    return []
                  }
                })
                await host.peerStore.merge(peerIdFromDid(did), { multiaddrs })
              },
              onPeer: (listener) => {
                const onConnect = (evt: CustomEvent<{ toString(): string }>): void => {
                  try {
                    listener(didFromPeerId(evt.detail as never))
                  } catch (err) {
                    logger.debug({ err: describeError(err) }, 'a peer without a DID connected')
                  }
                }
                host.addEventListener('peer:connect', onConnect as never)
                return () => host.removeEventListener('peer:connect', onConnect as never)
              },
              ...(walletOptions.mailbox === undefined ? {} : { mailbox: walletOptions.mailbox }),
              ...(walletOptions.scrypt === undefined ? {} : { scrypt: walletOptions.scrypt }),
              logger,
            })
      if (wallet !== undefined) stops.push(() => wallet.stop())

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
        resources,
        operator,
        inference,
        experts,
        fl,
        governance,
        arena,
        ...(webrtc === undefined ? {} : { webrtc }),
        ...(directory === undefined ? {} : { directory }),
        ...(wallet === undefined ? {} : { wallet }),
        dashboardDir: options.dashboardDir ?? DASHBOARD_DIR,
        ...(options.cors === undefined ? {} : { cors: options.cors }),
        ...(options.allowedHosts === undefined ? {} : { allowedHosts: options.allowedHosts }),
        ...(options.rateLimitPerMinute === undefined
          ? {}
          : { rateLimit: { max: options.rateLimitPerMinute, timeWindowMs: 60_000 } }),
        ...(options.apiToken === undefined ? {} : { operatorToken: options.apiToken }),
      })
      stops.push(() => api.close())
      await api.listen({ host: config.apiHost, port: config.apiPort })

      node.start()
      network.start()
      stops.push(() => network.stop())
      await inference.start()
      experts.start()
      wallet?.start()
      metrics.blockCommitted({ height: node.app.head.height, txs: 0 })
      return new FullNode({ node, host, network, api, apiUrl, events, metrics, inference, experts }, controller, stops)
    } catch (err) {
      await unwind()
      throw err
    }
  }

  /** Aborts the root signal (timers and loops end), then stops every part in the reverse order of `start`. */
  /**
   * Stops every part, in reverse order of starting, even when one of them fails to stop (a full
   * disk refuses the peer store's last write): the rest still stop, and the first failure is
   * thrown at the end.
   */
  async stop(): Promise<void> {
    this.#controller.abort()
    await stopAll(this.#stops.splice(0).reverse())
  }

  /** Aborted when the node stops. */
  get signal(): AbortSignal {
    return this.#controller.signal
  }
}
