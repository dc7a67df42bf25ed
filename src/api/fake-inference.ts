/**
 * A test double of `InferenceApi` (the narrow seam the inference routes use), for route tests
 * that need no network: a fixed registry, `infer` that checks inputs against the model's schema
 * like the gateway and answers with signed receipts, a scriptable `complete`, and model fetches
 * that report a few steps of progress (scriptable too). Every call is recorded, so a test can assert that a refused request charged nothing (reached no call).
 */
import { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import { signJob, signReceipt, type Receipt } from '../inference/job.ts'
import { checkAgainstSchema, createTensor, hashTensorMap, type TensorMap } from '../inference/tensor.ts'
import { InferenceError } from '../inference/errors.ts'
import type {
  CompletionOutcome,
  CompletionRequest,
  FetchView,
  InferenceApi,
  InferOutcome,
  ModelView,
} from './inference-api.ts'

const model = (m: Partial<ModelView> & Pick<ModelView, 'name' | 'kind' | 'inputs' | 'outputs'>): ModelView => ({
  cid: `bafkreifake${m.name.replace(/[^a-z0-9]/g, '')}`.padEnd(59, 'q'),
  owner: 'did:key:z6MkfakeOwner',
  version: '1',
  price: 5n,
  workers: 1,
  registeredAt: 0,
  registeredTime: 1_700_000_000_000,
  ...m,
})

/** The registry the fake serves. */
export const FAKE_MODELS: readonly ModelView[] = [
  model({
    name: 'tiny',
    kind: 'tensor',
    inputs: [{ name: 'x', type: 'float32', dims: [null, 2] }],
    outputs: [{ name: 'y', type: 'float32', dims: [null, 2] }],
  }),
  model({
    name: 'detector',
    kind: 'tensor',
    inputs: [{ name: 'images', type: 'float32', dims: [1, 3, null, null] }],
    outputs: [{ name: 'boxes', type: 'float32', dims: [1, null, 6] }],
  }),
  model({
    name: 'yolo',
    kind: 'tensor',
    inputs: [{ name: 'images', type: 'float32', dims: [1, 3, 640, 640] }],
    outputs: [{ name: 'boxes', type: 'float32', dims: [1, null, 6] }],
  }),
  model({
    name: 'pair',
    kind: 'tensor',
    inputs: [
      { name: 'a', type: 'int64', dims: [null] },
      { name: 'b', type: 'uint8', dims: [null] },
    ],
    outputs: [{ name: 'c', type: 'float32', dims: [1] }],
  }),
  model({
    name: 'chars',
    kind: 'text',
    inputs: [{ name: 'context', type: 'int64', dims: [1, 16] }],
    outputs: [{ name: 'logits', type: 'float32', dims: [1, 64] }],
  }),
  model({
    name: 'tiny-lm',
    kind: 'lm',
    price: 2n,
    promptPrice: 1n,
    contextLength: 512,
    inputs: [
      { name: 'prompt_ids', type: 'int64', dims: [1, null] },
      { name: 'sampling', type: 'int64', dims: [6] },
      { name: 'stop', type: 'uint8', dims: [null] },
    ],
    outputs: [
      { name: 'output_ids', type: 'int64', dims: [1, null] },
      { name: 'finish', type: 'int32', dims: [1] },
    ],
  }),
]

export type CompleteFn = (request: CompletionRequest, onToken?: (piece: string) => void) => Promise<CompletionOutcome>

/**
 * What a fake fetch does: reports progress through `onProgress` (each view is copied into
 * `fetches()`) and resolves with the finished view, or throws.
 */
export type FetchFn = (model: ModelView, onProgress: (progress: FetchView) => void) => Promise<FetchView>

/** The peers the default fetch takes blocks from. */
export const FAKE_PEERS: readonly string[] = ['did:key:z6MkfakePeerA', 'did:key:z6MkfakePeerB']

/** The size the default fetch reports, in 4 steps of a quarter, 5 ms apart. */
export const FAKE_FETCH_BYTES = 4_000_000

export interface FakeInference extends InferenceApi {
  readonly calls: {
    infer: Array<Parameters<InferenceApi['infer']>[0]>
    complete: CompletionRequest[]
    /** The model each `fetchModel` call named (joined fetches too). */
    fetchModel: string[]
  }
  /** Replaces what `complete` does (after the call is recorded). */
  completeWith(fn: CompleteFn): void
  /** Replaces what a new fetch does (a call that joins a running fetch does not run it again). */
  fetchWith(fn: FetchFn): void
  /** A receipt signed by the fake worker, as `infer` and the default `complete` answer. */
  receipt(modelCid: string, outputs: TensorMap, fee: bigint): Receipt
  readonly workerDid: string
}

/**
 * `infer` answers `{ echo: <the first input>, sum: float32 [1] }`; the default `complete` streams
 * "Hello" and " world" and finishes with 'stop', 7 prompt and 2 completion tokens; the default
 * fetch reports FAKE_FETCH_BYTES in four steps from the two FAKE_PEERS and finishes done. A
 * second `fetchModel` of a model being fetched joins the running fetch, as the node's does.
 */
export function fakeInference(): FakeInference {
  const gatewayKey = Ed25519KeyPair.generate()
  const workerKey = Ed25519KeyPair.generate()
  const clientKey = Ed25519KeyPair.generate()
  const gateway = didFromEd25519PublicKey(gatewayKey.publicKey)
  const worker = didFromEd25519PublicKey(workerKey.publicKey)
  const calls: FakeInference['calls'] = { infer: [], complete: [], fetchModel: [] }
  const find = (name: string): ModelView => {
    const found = FAKE_MODELS.find((m) => m.name === name || m.cid === name)
    if (found === undefined) throw new InferenceError('unknown-model', `unknown model ${JSON.stringify(name)}`)
    return found
  }
  const receipt = (modelCid: string, outputs: TensorMap, fee: bigint): Receipt =>
    signReceipt(workerKey, {
      job: signJob(clientKey, {
        chainId: 'donghae-test',
        gateway,
        model: modelCid,
        inputsHash: new Uint8Array(32),
        maxFee: fee,
        deadline: 1_700_000_060_000,
        salt: new Uint8Array(16),
      }),
      dispatch: null,
      outputHash: hashTensorMap(outputs),
      fee,
      ep: 'cpu',
      runtime: 'fake-runtime',
      startedAt: 1_700_000_000_000,
      finishedAt: 1_700_000_000_005,
      computeMicros: 5_000,
    })
  const defaultComplete: CompleteFn = async (request, onToken) => {
    find(request.model)
    onToken?.('Hello')
    onToken?.(' world')
    return {
      text: 'Hello world',
      receipts: [receipt(find(request.model).cid, {}, 9n)],
      finishReason: 'stop',
      promptTokens: 7,
      completionTokens: 2,
      worker,
      ttftMs: 12.5,
    }
  }
  let complete = defaultComplete
  const defaultFetch: FetchFn = async (m, onProgress) => {
    const view: FetchView = {
      model: m.cid,
      name: m.name,
      bytes: 0,
      totalBytes: FAKE_FETCH_BYTES,
      fromPeers: {},
      startedAt: Date.now(),
      state: 'fetching',
    }
    onProgress({ ...view, fromPeers: {} })
    for (let step = 1; step <= 4; step++) {
      await new Promise((resolve) => setTimeout(resolve, 5))
      const peer = FAKE_PEERS[step % FAKE_PEERS.length] as string
      view.fromPeers[peer] = (view.fromPeers[peer] ?? 0) + 4
      view.bytes = (FAKE_FETCH_BYTES / 4) * step
      onProgress({ ...view, fromPeers: { ...view.fromPeers } })
    }
    return { ...view, fromPeers: { ...view.fromPeers }, state: 'done', finishedAt: Date.now() }
  }
  let runFetch = defaultFetch
  /** Newest first, one per model. */
  const fetchList: FetchView[] = []
  const running = new Map<string, { done: Promise<FetchView>; listeners: Set<(p: FetchView) => void> }>()
  const record = (view: FetchView): void => {
    const at = fetchList.findIndex((f) => f.model === view.model)
    if (at >= 0) fetchList.splice(at, 1)
    fetchList.unshift({ ...view, fromPeers: { ...view.fromPeers } })
  }
  const fetchModel = (name: string, onProgress?: (p: FetchView) => void): Promise<FetchView> => {
    calls.fetchModel.push(name)
    let m: ModelView
    try {
      m = find(name)
    } catch (err) {
      return Promise.reject(err)
    }
    const joined = running.get(m.cid)
    if (joined !== undefined) {
      if (onProgress !== undefined) joined.listeners.add(onProgress)
      return joined.done
    }
    const listeners = new Set<(p: FetchView) => void>(onProgress === undefined ? [] : [onProgress])
    const progress = (view: FetchView): void => {
      record(view)
      for (const listener of listeners) listener({ ...view, fromPeers: { ...view.fromPeers } })
    }
    const done = runFetch(m, progress).then(
      (view) => {
        running.delete(m.cid)
        record(view)
        return view
      },
      (err: unknown) => {
        running.delete(m.cid)
        const last = fetchList.find((f) => f.model === m.cid)
        if (last !== undefined)
          record({
            ...last,
            state: 'failed',
            finishedAt: Date.now(),
            error: err instanceof Error ? err.message : String(err),
          })
        throw err
      },
    )
    running.set(m.cid, { done, listeners })
    return done
  }
  return {
    did: gateway,
    workerDid: worker,
    calls,
    receipt,
    completeWith: (fn) => {
      complete = fn
    },
    fetchWith: (fn) => {
      runFetch = fn
    },
    models: async () => [...FAKE_MODELS],
    infer: async (request): Promise<InferOutcome> => {
      calls.infer.push(request)
      const m = find(request.model)
      checkAgainstSchema(request.inputs, m.inputs)
      const first = Object.values(request.inputs)[0]
      let sum = 0
      if (first !== undefined) for (const v of first.data) sum += Number(v)
      const outputs: TensorMap = {
        ...(first === undefined ? {} : { echo: first }),
        sum: createTensor('float32', [1], Float32Array.of(sum)),
      }
      return {
        outputs,
        receipt: receipt(m.cid, outputs, m.price),
        worker,
        gateway,
        latencyMs: 1.5,
        attempts: 1,
      }
    },
    complete: async (request, onToken) => {
      calls.complete.push(request)
      return complete(request, onToken)
    },
    settlement: () => undefined,
    workers: () => [],
    stats: () => ({
      jobs: 0,
      failures: 0,
      jobsPerSecond: 0,
      latencyMs: { p50: 0, p99: 0 },
      audits: 0,
      auditsFailed: 0,
      canaries: 0,
      slashes: 0,
      pendingSettlement: 0,
      worker: { running: 0, queued: 0, paid: 0 },
      badModels: [],
    }),
    deposit: () => ({ amount: 0n, unlocking: [], reserved: 0n }),
    publishModel: async () => {
      throw new InferenceError('bad-input', 'the fake does not publish')
    },
    fetches: () => fetchList.map((f) => ({ ...f, fromPeers: { ...f.fromPeers } })),
    fetchModel,
  }
}
