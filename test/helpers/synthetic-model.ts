/**
 * A synthetic ONNX model of any size, for the model-fetch tests: one dense layer of a classifier,
 *
 *   input float32 [1, K] ─MatMul(w float32 [K, N])─ Softmax(axis -1) ─ probabilities float32 [1, N]
 *
 * written with the node's own ONNX writer (`buildOnnxModel`). `w` holds K·N pseudo-random
 * float32s (mulberry32 of a seed, scaled so the logits have a standard deviation near 1), so the
 * file is 4·K·N bytes plus a few hundred of protobuf, the same bytes on every build and therefore
 * the same CID. `loadAndRun` is what a node does with a fetched model: `OnnxRuntime.load` (the
 * bytes checked against the UnixFS CID, then the model safety check, then ONNX Runtime parses
 * them) and one run, answering the hash of the outputs as a receipt would carry it.
 */
import { buildOnnxModel } from '../../src/inference/onnx-export.ts'
import { OnnxRuntime } from '../../src/inference/runtime.ts'
import { createTensor, hashTensorMap, type TensorMap } from '../../src/inference/tensor.ts'
import { createRng } from './random.ts'

/** The input width: with N = 10_000 outputs the weights are 200 MB. */
export const SYNTHETIC_K = 5_000

export interface SyntheticModel {
  bytes: Uint8Array
  k: number
  n: number
}

/** A model of about `size` bytes (N = size / 4K outputs, at least 1). */
export function syntheticModel(size: number, seed = 11, k = SYNTHETIC_K): SyntheticModel {
  const n = Math.max(1, Math.round(size / (4 * k)))
  const rng = createRng(seed)
  const scale = 3 / Math.sqrt(k) // x and w uniform in ±1, ±scale: Var(logit) = k · 1/3 · scale²/3 = 1
  const w = new Float32Array(k * n)
  for (let i = 0; i < w.length; i++) w[i] = (rng.next() * 2 - 1) * scale
  const bytes = buildOnnxModel(
    {
      name: 'synthetic',
      inputs: [{ name: 'input', dims: [1, k] }],
      outputs: [{ name: 'probabilities', dims: [1, n] }],
      initializers: [{ name: 'w', dims: [k, n], data: w }],
      nodes: [
        { op: 'MatMul', inputs: ['input', 'w'], outputs: ['logits'] },
        { op: 'Softmax', inputs: ['logits'], outputs: ['probabilities'], attributes: { axis: -1 } },
      ],
    },
    { producerName: 'donghae-test', docString: `synthetic ${k}x${n} dense layer, seed ${seed}` },
  )
  return { bytes, k, n }
}

/** The model's input: K pseudo-random float32s in ±1. */
export function syntheticInput(k: number, seed = 12): TensorMap {
  const rng = createRng(seed)
  return {
    input: createTensor(
      'float32',
      [1, k],
      Float32Array.from({ length: k }, () => rng.next() * 2 - 1),
    ),
  }
}

export interface ModelRun {
  /** sha256 of the outputs' canonical encoding (`hashTensorMap`), hex. */
  outputHash: string
  /** The most probable class and its probability, to show in diagnostics. */
  top: { index: number; p: number }
  ep: string
  /** `OnnxRuntime.load`: CID check, safety check, session. */
  loadMs: number
  runMs: number
}

/** Loads `bytes` as `cid` into a CPU `OnnxRuntime`, runs it once on `inputs`, closes it. */
export async function loadAndRun(cid: string, bytes: Uint8Array, inputs: TensorMap): Promise<ModelRun> {
  const rt = new OnnxRuntime({ executionProvider: 'cpu' })
  try {
    const started = performance.now()
    await rt.load(cid, bytes)
    const loaded = performance.now()
    const { outputs, ep } = await rt.run(cid, inputs)
    const runMs = Math.round(performance.now() - loaded)
    const probabilities = Object.values(outputs)[0]?.data ?? new Float32Array()
    let index = 0
    for (let i = 1; i < probabilities.length; i++)
      if (Number(probabilities[i]) > Number(probabilities[index])) index = i
    return {
      outputHash: Buffer.from(hashTensorMap(outputs)).toString('hex'),
      top: { index, p: Number(probabilities[index]) },
      ep,
      loadMs: Math.round(loaded - started),
      runMs,
    }
  } finally {
    await rt.close()
  }
}
