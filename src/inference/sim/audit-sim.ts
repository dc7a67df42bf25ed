/**
 * A seeded simulation of the market's audit loop, run by the production components
 * (src/inference/{gateway,worker,settler,auditor,models}.ts built by `createInference`) on a
 * simulated network (sim/network.ts): real Ed25519 keys, signed jobs, dispatches and receipts,
 * ONNX Runtime running `models/digits-mlp.onnx` on rows of the digits dataset, and the inference
 * chain module settling, drawing auditors and quorums and slashing, block after block. Only the
 * clock, the network and block ids are simulated.
 *
 * One gateway (also the client, with its own deposit) sends `jobsPerBlock` jobs per block; its
 * settler settles them in that block; its auditor follows the chain's draws. Workers are bonded at
 * genesis with their provider and runtime declared. Behaviours are the worker's own test
 * behaviours (components.ts `WorkerBehaviour`): 'cheat' rotates the probability vector on a share
 * of jobs (audit re-runs included), 'lazy' never runs the model. Provider 'fp16' emulates a second
 * execution provider (CoreML computes in half precision): the real CPU output rounded to float16,
 * declared and signed as 'coreml'. Runs report a fixed compute time and a fixed calibrated
 * throughput per worker (`jobsPerSecond`), so the machine's load never changes a draw.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { utf8 } from '../../core/bytes.ts'
import { sha256 } from '../../core/hash.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { createRng } from '../../core/rng.ts'
import { Ed25519KeyPair } from '../../identity/keys.ts'
import { didFromEd25519PublicKey } from '../../identity/did-key.ts'
import { DEFAULT_PARAMS, type ChainParams, type GenesisDoc } from '../../chain/genesis.ts'
import type { ChainEvent } from '../../chain/host.ts'
import type { ModelRunner, WorkerBehaviour } from '../components.ts'
import { DEMO_TOLERANCE, demoModels, readDigitsDataset, type DemoModel } from '../demo-models.ts'
import { OnnxRuntime, RUNTIME_NAME } from '../runtime.ts'
import { createTensor, type TensorMap } from '../tensor.ts'
import { SimNetwork, type SimNode } from './network.ts'

/** Receipts settled per block unless told otherwise. */
export const DEFAULT_JOBS_PER_BLOCK = 16
/** Workers in a default run. */
export const DEFAULT_WORKERS = 8

const PRICE = 100n
const BOND = 100_000n
const T0 = 1_700_000_000_000
const CHAIN_ID = 'donghae-audit-sim'
const COMPUTE_MICROS = 60

export type SimBehaviour = Exclude<WorkerBehaviour, { kind: 'slow' }>
export type SimProvider = 'cpu' | 'fp16'

export interface SimWorkerSpec {
  /** @default honest */
  behaviour?: SimBehaviour
  /** @default 'cpu' */
  provider?: SimProvider
  /** Calibrated throughput it reports (the gateway draws in proportion). @default 100 */
  jobsPerSecond?: number
  /**
   * Bonded and serving the model on chain, but no node runs: drawn as an auditor like the
   * others, it never answers (a validator that declared a model and runs no worker). @default false
   */
  offline?: boolean
}

export interface AuditSimOptions {
  seed: number
  /** One entry per worker. @default DEFAULT_WORKERS honest CPU workers */
  workers?: readonly SimWorkerSpec[]
  /** Client jobs served (and settled) per block. @default DEFAULT_JOBS_PER_BLOCK */
  jobsPerBlock?: number
  /** Client jobs after which no more are sent (pending audits still run). */
  maxJobs: number
  /** End the run at the first slash of a dishonest worker. @default true */
  stopAtSlash?: boolean
  /** Chain parameters over DEFAULT_PARAMS (audit threshold, quorum size, ...). */
  params?: Partial<ChainParams>
  /** Share of the gateway's jobs followed by a canary, ppm. @default the gateway's default */
  canaryPpm?: number
  /** Every chain event, as blocks commit (for tests and investigations). */
  onEvent?(event: ChainEvent, height: number): void
}

export interface AuditSimResult {
  seed: number
  /** Client jobs served (canaries not included). */
  jobs: number
  blocks: number
  /** Paid jobs served by dishonest workers until the block of the first slash of one. */
  dishonestJobs: number
  /** Whether a dishonest worker was slashed. */
  caught: boolean
  /** Re-runs by drawn auditors and quorum members; canary runs (the gateway's own and the worker's). */
  auditRuns: number
  quorumRuns: number
  canaryRuns: number
  /** Times the gateway's auditor read a held job's state to move it on (`Auditor.stats.looks`). */
  auditorLooks: number
  /** `inference.dispute` events, and those between two honest workers. */
  disputes: number
  honestDisputes: number
  /** `inference.slashed` events against honest workers (false positives). */
  honestSlashes: number
  /** Transactions the chain refused, by `kind:reason`. */
  refused: Record<string, number>
  /** Extra runs ÷ all runs: audits and quorums, over the run and over its second half; then with canaries too. */
  overhead: number
  overheadLastHalf: number
  overheadWithCanaries: number
  overheadWithCanariesLastHalf: number
  /**
   * The steady-state share: `overheadWithCanariesLastHalf` when the run reached the second half of
   * its job cap, else (a run that ended at a slash) `overheadWithCanaries` over the whole run.
   */
  overheadSteady: number
  /** What the dishonest workers were paid (fees, audit rewards) and lost to slashes, base units. */
  dishonestEarned: bigint
  dishonestSlashed: bigint
  /**
   * (earned - slashed) ÷ earned for the dishonest workers: what cheating paid relative to the
   * same work done honestly (the same jobs would have earned the same fees). 1 when never
   * slashed; below 1 when cheating cost more than it paid.
   */
  netOverHonest: number
  /** Requests any node sent to the offline workers (`SimWorkerSpec.offline`). */
  requestsToOffline: number
  /** Paid jobs per worker, in the order of `workers`. */
  jobsByWorker: number[]
  /** sha256 of every chain event in order, hex: equal digests, equal runs. */
  digest: string
}

interface Counters {
  client: number
  audit: number
  quorum: number
  canary: number
}

const seedKey = (seed: number, label: string): Ed25519KeyPair =>
  Ed25519KeyPair.fromSeed(sha256(utf8(`donghae/audit-sim/${seed}/${label}`)))

/** The demo digits model, its dataset and an ONNX Runtime session, shared by every run. */
export class AuditSim {
  readonly #runtime: OnnxRuntime
  readonly #model: DemoModel
  readonly #bytes: Uint8Array
  readonly #rows: Float32Array[]

  private constructor(runtime: OnnxRuntime, model: DemoModel, bytes: Uint8Array, rows: Float32Array[]) {
    this.#runtime = runtime
    this.#model = model
    this.#bytes = bytes
    this.#rows = rows
  }

  /** Loads models/digits-mlp.onnx (verified against its CID) and the digits dataset. */
  static async open(options: { signal?: AbortSignal } = {}): Promise<AuditSim> {
    const model = (await demoModels(options)).find((m) => m.name === 'digits-mlp')
    if (model === undefined) throw new InvalidInputError('models/ has no digits-mlp.onnx; run models/train-digits.ts')
    const runtime = new OnnxRuntime({ executionProvider: 'cpu' })
    const bytes = new Uint8Array(await readFile(model.file, options))
    await runtime.load(model.cid, bytes, options)
    const data = await readDigitsDataset(options)
    const rows = Array.from({ length: data.labels.length }, (_, r) =>
      data.features.slice(r * data.featureCount, (r + 1) * data.featureCount),
    )
    return new AuditSim(runtime, model, bytes, rows)
  }

  async close(): Promise<void> {
    await this.#runtime.close()
  }

  /** One seeded run until a dishonest worker is slashed (unless told to go on) or `maxJobs` jobs were served. */
  async run(options: AuditSimOptions): Promise<AuditSimResult> {
    const specs: readonly SimWorkerSpec[] = options.workers ?? Array.from({ length: DEFAULT_WORKERS }, () => ({}))
    const params: ChainParams = { ...DEFAULT_PARAMS, ...options.params }
    const workerKeys = specs.map((_, i) => seedKey(options.seed, `worker/${i}`))
    const gatewayKey = seedKey(options.seed, 'gateway')
    const net = new SimNetwork({ seed: options.seed, genesis: this.#genesis(params, gatewayKey, workerKeys, specs) })
    const dids = workerKeys.map((k) => didFromEd25519PublicKey(k.publicKey))
    const dishonest = new Set(dids.filter((_, i) => (specs[i]?.behaviour?.kind ?? 'honest') !== 'honest'))
    const counters = { all: newCounters(), lastHalf: newCounters() }
    const stats = newStats(specs.length)
    let inLastHalf = false
    const count = (kind: keyof Counters): void => {
      counters.all[kind]++
      if (inLastHalf) counters.lastHalf[kind]++
    }
    const blobs = { get: async () => this.#bytes, fetch: async () => this.#bytes }
    const offline = new Set(dids.filter((_, i) => specs[i]?.offline === true))
    const online = specs.flatMap((spec, i) => (spec.offline === true ? [] : [{ spec, i }]))
    const workers: SimNode[] = online.map(({ spec, i }) =>
      net.addNode(workerKeys[i] as Ed25519KeyPair, {
        blobs,
        worker: {
          runner: this.#runner(spec),
          slots: 4,
          ...(spec.behaviour === undefined ? {} : { behaviour: spec.behaviour }),
        },
        gateway: false,
        selfDeposit: false,
        onJob: (e) => {
          if (e.purpose === 'audit') count('audit')
          else if (e.purpose === 'quorum') count('quorum')
          else if (e.purpose === 'job' && !stats.caught) {
            stats.jobsByWorker[i] = (stats.jobsByWorker[i] ?? 0) + 1
            if (dishonest.has(e.worker)) stats.dishonestJobs++
          }
        },
      }),
    )
    // the gateway runs the model itself (for canaries) but is not a bonded worker: never drawn
    const gateway = net.addNode(gatewayKey, {
      blobs,
      worker: { runner: this.#runner({}) },
      ...(options.canaryPpm === undefined ? {} : { canaryPpm: options.canaryPpm }),
    })
    const digest = createHash('sha256')
    net.onCommit((height, events) => {
      for (const e of events) {
        digest.update(JSON.stringify(e))
        options.onEvent?.(e, height)
        observe(e, stats, dishonest)
      }
    })
    try {
      for (const node of [...workers, gateway]) await node.inference.start()
      await this.#warmUp(net, gateway, workers.length)
      const rng = createRng(options.seed).fork('inputs')
      const perBlock = options.jobsPerBlock ?? DEFAULT_JOBS_PER_BLOCK
      const stopAtSlash = options.stopAtSlash ?? true
      const canariesBefore = gateway.inference.gateway.stats.canaries
      while (stats.jobs < options.maxJobs && !(stopAtSlash && stats.caught)) {
        inLastHalf = stats.jobs >= options.maxJobs / 2
        for (let j = 0; j < perBlock && stats.jobs < options.maxJobs; j++) {
          const row = rng.pick(this.#rows)
          const inputs: TensorMap = { input: createTensor('float32', [1, row.length], row) }
          await gateway.inference.gateway.infer({ model: this.#model.cid, inputs })
          stats.jobs++
          count('client')
        }
        await net.quiesce()
        await this.#block(net, gateway)
        const canaries = gateway.inference.gateway.stats.canaries - canariesBefore
        while (counters.all.canary < canaries * 2) count('canary')
      }
      // the audits of the last receipts come after the last job
      for (let i = 0; i < 12 && !(stopAtSlash && stats.caught); i++) await this.#block(net, gateway)
    } finally {
      for (const node of [...workers, gateway]) node.inference.stop()
      net.close()
    }
    const requestsToOffline = [...offline].reduce((sum, did) => sum + (net.requestsTo.get(did) ?? 0), 0)
    return result(options.seed, stats, counters, net, digest.digest('hex'), {
      auditorLooks: gateway.inference.auditor.stats.looks,
      requestsToOffline,
    })
  }

  /** Moves time one block on, lets every component act, settles, commits, lets them react. */
  async #block(net: SimNetwork, gateway: SimNode): Promise<void> {
    net.clock.advance(1_000)
    await net.quiesce()
    await gateway.inference.settler.flush()
    net.commit()
    await net.quiesce()
  }

  /** Blocks until the gateway has its deposit and hears every worker's advert. */
  async #warmUp(net: SimNetwork, gateway: SimNode, workers: number): Promise<void> {
    const topUp = gateway.inference.gateway.topUpSelfDeposit()
    for (let i = 0; i < 10; i++) {
      await this.#block(net, gateway)
      if (gateway.inference.table.serving(this.#model.cid).length >= workers && i >= 2) break
    }
    await topUp
  }

  #runner(spec: SimWorkerSpec): ModelRunner {
    const runtime = this.#runtime
    const fp16 = spec.provider === 'fp16'
    const jobsPerSecond = spec.jobsPerSecond ?? 100
    return {
      ep: fp16 ? 'coreml' : 'cpu',
      runtime: RUNTIME_NAME,
      has: () => true,
      load: async () => {},
      run: async (cid, inputs) => {
        const { outputs } = await runtime.run(cid, inputs)
        return { outputs: fp16 ? halfOutputs(outputs) : outputs, computeMicros: COMPUTE_MICROS }
      },
      calibrate: async () => ({ jobsPerSecond }),
    }
  }

  #genesis(
    params: ChainParams,
    gateway: Ed25519KeyPair,
    workers: Ed25519KeyPair[],
    specs: readonly SimWorkerSpec[],
  ): GenesisDoc {
    const { cid, name, version, kind, inputs, outputs, size } = this.#model
    const gatewayDid = didFromEd25519PublicKey(gateway.publicKey)
    return {
      chainId: CHAIN_ID,
      genesisTime: T0,
      params,
      accounts: [{ did: gatewayDid, balance: 10n ** 15n }],
      validators: [{ did: didFromEd25519PublicKey(seedKey(0, 'validator').publicKey), stake: 10_000n }],
      inference: {
        models: [
          {
            owner: gatewayDid,
            cid,
            name,
            version,
            kind,
            inputs,
            outputs,
            size,
            price: PRICE,
            tolerance: DEMO_TOLERANCE,
          },
        ],
        workers: workers.map((k, i) => ({
          did: didFromEd25519PublicKey(k.publicKey),
          bond: BOND,
          ep: specs[i]?.provider === 'fp16' ? 'coreml' : 'cpu',
          runtime: RUNTIME_NAME,
          models: [cid],
        })),
      },
    }
  }
}

interface Stats {
  jobs: number
  blocks: number
  dishonestJobs: number
  caught: boolean
  disputes: number
  honestDisputes: number
  honestSlashes: number
  dishonestEarned: bigint
  dishonestSlashed: bigint
  jobsByWorker: number[]
}

function newStats(workers: number): Stats {
  return {
    jobs: 0,
    blocks: 0,
    dishonestJobs: 0,
    caught: false,
    disputes: 0,
    honestDisputes: 0,
    honestSlashes: 0,
    dishonestEarned: 0n,
    dishonestSlashed: 0n,
    jobsByWorker: Array.from({ length: workers }, () => 0),
  }
}

const newCounters = (): Counters => ({ client: 0, audit: 0, quorum: 0, canary: 0 })

function observe(e: ChainEvent, stats: Stats, dishonest: ReadonlySet<string>): void {
  const a = e.attributes
  switch (e.type) {
    case 'inference.settled':
      if (dishonest.has(a.worker ?? '')) stats.dishonestEarned += BigInt(a.fee ?? 0) - BigInt(a.share ?? 0)
      break
    case 'inference.audit_passed':
      if (dishonest.has(a.auditor ?? '')) stats.dishonestEarned += BigInt(a.reward ?? 0)
      break
    case 'inference.resolved':
      if (dishonest.has(a.winner ?? '')) stats.dishonestEarned += BigInt(a.reward ?? 0)
      break
    case 'inference.dispute':
      stats.disputes++
      if (!dishonest.has(a.worker ?? '') && !dishonest.has(a.auditor ?? '')) stats.honestDisputes++
      break
    case 'inference.slashed':
      if (dishonest.has(a.worker ?? '')) {
        stats.caught = true
        stats.dishonestSlashed += BigInt(a.amount ?? 0)
      } else stats.honestSlashes++
      break
  }
}

function result(
  seed: number,
  stats: Stats,
  counters: { all: Counters; lastHalf: Counters },
  net: SimNetwork,
  digest: string,
  counts: { auditorLooks: number; requestsToOffline: number },
): AuditSimResult {
  const share = (c: Counters, withCanaries: boolean): number => {
    const extra = c.audit + c.quorum + (withCanaries ? c.canary : 0)
    return extra / Math.max(1, c.client + c.audit + c.quorum + c.canary)
  }
  const earned = stats.dishonestEarned
  return {
    seed,
    jobs: stats.jobs,
    blocks: net.height,
    dishonestJobs: stats.dishonestJobs,
    caught: stats.caught,
    auditRuns: counters.all.audit,
    quorumRuns: counters.all.quorum,
    canaryRuns: counters.all.canary,
    auditorLooks: counts.auditorLooks,
    requestsToOffline: counts.requestsToOffline,
    disputes: stats.disputes,
    honestDisputes: stats.honestDisputes,
    honestSlashes: stats.honestSlashes,
    refused: { ...net.refused },
    overhead: share(counters.all, false),
    overheadLastHalf: share(counters.lastHalf, false),
    overheadWithCanaries: share(counters.all, true),
    overheadWithCanariesLastHalf: share(counters.lastHalf, true),
    overheadSteady: counters.lastHalf.client > 0 ? share(counters.lastHalf, true) : share(counters.all, true),
    dishonestEarned: earned,
    dishonestSlashed: stats.dishonestSlashed,
    netOverHonest:
      earned === 0n
        ? stats.dishonestSlashed > 0n
          ? -Infinity
          : 1
        : Number(earned - stats.dishonestSlashed) / Number(earned),
    jobsByWorker: stats.jobsByWorker,
    digest,
  }
}

/** Round every float to the nearest IEEE half (ties away from zero; subnormals kept): an fp16 provider's answer. */
function halfOutputs(map: TensorMap): TensorMap {
  const out: TensorMap = {}
  for (const [name, t] of Object.entries(map)) {
    if (t.type !== 'float32') throw new InvalidInputError(`the digits model outputs float32, not ${t.type}`)
    const values = t.data.map((v) => {
      if (v === 0 || !Number.isFinite(v)) return v
      const exponent = Math.max(Math.floor(Math.log2(Math.abs(v))), -14)
      const step = 2 ** (exponent - 10)
      return Math.round(v / step) * step
    })
    out[name] = createTensor('float32', [...t.dims], values)
  }
  return out
}
