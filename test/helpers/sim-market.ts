/**
 * The inference components on a simulated network, for attack tests that need the real worker,
 * gateway, settler and auditor (src/inference/sim/network.ts): digits-mlp on a real ONNX
 * Runtime, workers bonded at genesis, gateways funded, blocks committed on demand.
 */
import { readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { LmFiles } from '../../src/inference/lm/types.ts'
import { sha256 } from '../../src/core/hash.ts'
import { utf8 } from '../../src/core/bytes.ts'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../../src/identity/did-key.ts'
import { DEFAULT_PARAMS, type ChainParams, type GenesisDoc } from '../../src/chain/genesis.ts'
import type { ModelRunner, WorkerBehaviour } from '../../src/inference/components.ts'
import type { InferenceInit } from '../../src/inference/index.ts'
import type { DEMO_LM_NAME } from '../../src/inference/demo-models.ts'
import { DEMO_TOLERANCE, demoModels, readDigitsDataset, type DemoModel } from '../../src/inference/demo-models.ts'
import { OnnxRuntime, RUNTIME_NAME } from '../../src/inference/runtime.ts'
import { createTensor, type TensorMap } from '../../src/inference/tensor.ts'
import { SimNetwork, SIM_BLOCK_MS, type SimNode } from '../../src/inference/sim/network.ts'

export const PRICE = 100n
/** The language model's prices in the simulated market: per output token, per prompt token. */
export const LM_PRICE = 3n
export const LM_PROMPT_PRICE = 1n

export interface SimMarketOptions {
  seed: number
  /** One behaviour per bonded worker. @default six honest workers */
  workers?: WorkerBehaviour[]
  /** Gateways (funded accounts, not workers). @default 1 */
  gateways?: number
  /** Funded accounts that are neither (clients, attackers). @default 0 */
  accounts?: number
  params?: Partial<ChainParams>
  canaryPpm?: number
  /** The model the market trades. @default 'digits-mlp' */
  model?: 'digits-mlp' | typeof DEMO_LM_NAME
  /** The gateways' journals (a node's are LevelDB buckets). @default none */
  gatewayJournals?: InferenceInit['journals']
}

export class SimMarket {
  readonly net: SimNetwork
  readonly model: DemoModel
  readonly workers: SimNode[]
  readonly gateways: SimNode[]
  readonly keys: Map<string, Ed25519KeyPair>
  /** Funded keys that are neither workers nor gateways. */
  readonly accounts: Ed25519KeyPair[]
  readonly #rows: Float32Array[]
  readonly #runtime: OnnxRuntime
  #teacherForced = { count: 0 }

  private constructor(parts: {
    net: SimNetwork
    model: DemoModel
    workers: SimNode[]
    gateways: SimNode[]
    keys: Map<string, Ed25519KeyPair>
    rows: Float32Array[]
    runtime: OnnxRuntime
    accounts: Ed25519KeyPair[]
  }) {
    this.net = parts.net
    this.model = parts.model
    this.workers = parts.workers
    this.gateways = parts.gateways
    this.keys = parts.keys
    this.accounts = parts.accounts
    this.#rows = parts.rows
    this.#runtime = parts.runtime
  }

  static async open(options: SimMarketOptions): Promise<SimMarket> {
    const model = (await demoModels()).find((m) => m.name === (options.model ?? 'digits-mlp')) as DemoModel
    const bytes = new Uint8Array(await readFile(model.file))
    // a language model's tokenizer and configs travel by CID beside the graph
    const byCid = new Map<string, Uint8Array>([[model.cid, bytes]])
    const files: LmFiles = {}
    for (const [name, cid] of Object.entries(model.files ?? {})) {
      const file = new Uint8Array(await readFile(join(dirname(model.file), name)))
      files[name as keyof LmFiles] = file
      byCid.set(cid, file)
    }
    const runtime = new OnnxRuntime({ executionProvider: 'cpu' })
    await runtime.load(model.cid, bytes, model.kind === 'lm' ? { files } : {})
    const data = await readDigitsDataset()
    const rows = Array.from({ length: 64 }, (_, r) =>
      data.features.slice(r * data.featureCount, (r + 1) * data.featureCount),
    )
    const key = (label: string): Ed25519KeyPair =>
      Ed25519KeyPair.fromSeed(sha256(utf8(`sim-market/${options.seed}/${label}`)))
    const behaviours = options.workers ?? Array.from({ length: 6 }, (): WorkerBehaviour => ({ kind: 'honest' }))
    const workerKeys = behaviours.map((_, i) => key(`worker/${i}`))
    const gatewayKeys = Array.from({ length: options.gateways ?? 1 }, (_, i) => key(`gateway/${i}`))
    const accountKeys = Array.from({ length: options.accounts ?? 0 }, (_, i) => key(`account/${i}`))
    const did = (k: Ed25519KeyPair): string => didFromEd25519PublicKey(k.publicKey)
    const genesis: GenesisDoc = {
      chainId: 'donghae-sim-market',
      genesisTime: 1_700_000_000_000,
      params: { ...DEFAULT_PARAMS, ...options.params },
      accounts: [...gatewayKeys, ...accountKeys].map((k) => ({ did: did(k), balance: 10n ** 12n })),
      validators: [{ did: did(key('validator')), stake: 10_000n }],
      inference: {
        models: [
          {
            owner: did(gatewayKeys[0] as Ed25519KeyPair),
            cid: model.cid,
            name: model.name,
            version: model.version,
            kind: model.kind,
            inputs: model.inputs,
            outputs: model.outputs,
            size: model.size,
            price: model.kind === 'lm' ? LM_PRICE : PRICE,
            tolerance: model.kind === 'lm' ? model.tolerance : DEMO_TOLERANCE,
            ...(model.kind === 'lm'
              ? { files: model.files, contextLength: model.contextLength, promptPrice: LM_PROMPT_PRICE }
              : {}),
          },
        ],
        workers: workerKeys.map((k) => ({
          did: did(k),
          bond: 100_000n,
          ep: 'cpu',
          runtime: RUNTIME_NAME,
          models: [model.cid],
        })),
      },
    }
    const net = new SimNetwork({ seed: options.seed, genesis })
    const teacherForced = { count: 0 }
    const blobs = {
      get: async (cid: string) => byCid.get(cid),
      fetch: async (cid: string) => {
        const found = byCid.get(cid)
        if (found === undefined) throw new Error(`no blob ${cid}`)
        return found
      },
    }
    // one real ONNX Runtime shared by every simulated worker; compute time fixed so the
    // simulation's clock, not the machine, decides latencies
    const runner: ModelRunner = {
      ep: 'cpu',
      runtime: RUNTIME_NAME,
      has: () => true,
      load: async () => {},
      run: async (cid, inputs, runOptions) => {
        if (runOptions?.claimed !== undefined) teacherForced.count++
        return { ...(await runtime.run(cid, inputs, runOptions)), computeMicros: 60 }
      },
      calibrate: async () => ({ jobsPerSecond: 100 }),
    }
    const workers = workerKeys.map((k, i) =>
      net.addNode(k, {
        blobs,
        worker: { runner, behaviour: behaviours[i] as WorkerBehaviour },
        gateway: false,
        selfDeposit: false,
      }),
    )
    const gateways = gatewayKeys.map((k) =>
      net.addNode(k, {
        blobs,
        worker: { runner },
        ...(options.canaryPpm === undefined ? {} : { canaryPpm: options.canaryPpm }),
        ...(options.gatewayJournals === undefined ? {} : { journals: options.gatewayJournals }),
      }),
    )
    const keys = new Map([...workerKeys, ...gatewayKeys].map((k) => [did(k), k]))
    const market = new SimMarket({ net, model, workers, gateways, keys, rows, runtime, accounts: accountKeys })
    market.#teacherForced = teacherForced
    for (const node of [...workers, ...gateways]) await node.inference.start()
    // the gateways lock their own deposits (they pay for the jobs they sign) while adverts spread
    const deposits = gateways.map((g) => g.inference.gateway.topUpSelfDeposit())
    for (let i = 0; i < 4; i++) await market.block()
    await Promise.all(deposits)
    return market
  }

  /** Re-runs given a worker's claimed outputs (audits of language models, by teacher forcing). */
  get teacherForcedRuns(): number {
    return this.#teacherForced.count
  }

  /** Inputs for the model: row `i` of the digits data set. */
  inputs(i: number): TensorMap {
    const row = this.#rows[i % this.#rows.length] as Float32Array
    return { input: createTensor('float32', [1, row.length], row) }
  }

  /** One block: time moves on, components act, settlers flush, the chain commits, components react. */
  async block(): Promise<void> {
    this.net.clock.advance(SIM_BLOCK_MS)
    await this.net.quiesce()
    for (const g of this.gateways) await g.inference.settler.flush()
    this.net.commit()
    await this.net.quiesce()
  }

  async blocks(n: number): Promise<void> {
    for (let i = 0; i < n; i++) await this.block()
  }

  async close(): Promise<void> {
    for (const node of [...this.workers, ...this.gateways]) node.inference.stop()
    this.net.close()
    await this.#runtime.close()
  }
}
