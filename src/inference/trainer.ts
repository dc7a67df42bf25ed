/**
 * Training small models in the node itself, reproducibly.
 *
 * `Trainer` is the seam later domains reuse (federated learning trains rounds from given weights,
 * the arena trains challengers): a trainer turns a `Dataset` into weights, scores weights on a
 * dataset, and exports them as an ONNX file that the runtime serves. The built-in `mlpTrainer`
 * is a dense network (ReLU hidden layers, softmax output, cross-entropy loss, mini-batch Adam or
 * SGD with momentum). All randomness (initial weights, batch order, splits) comes from a seeded
 * PRNG, and the arithmetic is plain float64 JavaScript, so the same seed gives the same weights
 * bit for bit.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import { AbortError, InvalidInputError } from '../core/errors.ts'
import { mlpToOnnx, type MlpExportOptions } from './onnx-export.ts'

// ---- seeded randomness ----

/** A seeded pseudo-random source. Not for secrets: for weights, shuffles and splits. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number
  /** Uniform integer in [0, n). */
  int(n: number): number
  /** Standard normal (Box-Muller). */
  normal(): number
  /** Fisher-Yates shuffle in place. */
  shuffle<T extends { length: number; [i: number]: unknown }>(items: T): T
}

/** mulberry32 (Tommy Ettinger's 32-bit generator): tiny, fast, and plenty for initialisation and shuffles. */
export function createRng(seed: number): Rng {
  if (!Number.isInteger(seed)) throw new InvalidInputError('the seed must be an integer')
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number): number => Math.floor(next() * n)
  return {
    next,
    int,
    normal: () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()),
    shuffle(items) {
      for (let i = items.length - 1; i > 0; i--) {
        const j = int(i + 1)
        const tmp = items[i]
        items[i] = items[j]
        items[j] = tmp
      }
      return items
    },
  }
}

// ---- datasets ----

/** Labelled examples for classification: `features` is `count × featureCount`, row-major. */
export interface Dataset {
  features: Float32Array
  /** Class of each example, 0..classCount-1. */
  labels: Int32Array
  featureCount: number
  classCount: number
}

export function datasetSize(d: Dataset): number {
  return d.labels.length
}

/** Checks a dataset's internal consistency; throws `InvalidInputError`. */
export function checkDataset(d: Dataset): void {
  if (!Number.isSafeInteger(d.featureCount) || d.featureCount < 1)
    throw new InvalidInputError('featureCount must be \u2265 1')
  if (!Number.isSafeInteger(d.classCount) || d.classCount < 2)
    throw new InvalidInputError('classCount must be \u2265 2')
  if (d.features.length !== d.labels.length * d.featureCount)
    throw new InvalidInputError(`features hold ${d.features.length} values, expected labels × ${d.featureCount}`)
  if (d.labels.some((y) => y < 0 || y >= d.classCount))
    throw new InvalidInputError(`labels must be in 0..${d.classCount - 1}`)
}

/** The examples at `indices`, in that order. */
export function subset(d: Dataset, indices: ArrayLike<number>): Dataset {
  const features = new Float32Array(indices.length * d.featureCount)
  const labels = new Int32Array(indices.length)
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!
    features.set(d.features.subarray(i * d.featureCount, (i + 1) * d.featureCount), k * d.featureCount)
    labels[k] = d.labels[i]!
  }
  return { features, labels, featureCount: d.featureCount, classCount: d.classCount }
}

export interface SplitOptions {
  /** Share of each class held out for testing. @default 0.2 */
  testFraction?: number
  seed: number
}

/**
 * A seeded, stratified train/test split: each class is shuffled on its own and its first
 * `round(testFraction × size)` examples go to the test set, so both sets keep the class balance.
 * Indices within each set are in ascending order.
 */
export function splitDataset(d: Dataset, options: SplitOptions): { train: Dataset; test: Dataset } {
  const fraction = options.testFraction ?? 0.2
  if (!(fraction > 0 && fraction < 1)) throw new InvalidInputError('testFraction must be in (0, 1)')
  const rng = createRng(options.seed)
  const train: number[] = []
  const test: number[] = []
  for (let c = 0; c < d.classCount; c++) {
    const members: number[] = []
    d.labels.forEach((y, i) => {
      if (y === c) members.push(i)
    })
    rng.shuffle(members)
    const held = Math.round(fraction * members.length)
    test.push(...members.slice(0, held))
    train.push(...members.slice(held))
  }
  const ascending = (a: number, b: number): number => a - b
  return { train: subset(d, train.sort(ascending)), test: subset(d, test.sort(ascending)) }
}

// ---- the trainer interface ----

export interface Evaluation {
  /** Share of examples whose arg-max prediction equals the label. */
  accuracy: number
  /** Mean cross-entropy (natural log). */
  loss: number
  count: number
}

export interface TrainContext {
  signal?: AbortSignal
  /** Called after each epoch with the mean training loss of that epoch. */
  onEpoch?: (epoch: number, loss: number) => void
}

/**
 * What a model family offers the rest of Donghae. Training is async so that a node can run it
 * between other work (it yields to the event loop between epochs) and cancel it.
 */
export interface Trainer<Options, Weights> {
  readonly name: string
  train(dataset: Dataset, options: Options, context?: TrainContext): Promise<Weights>
  /** Class probabilities, `count × classCount`, for `count` rows of features. */
  predict(weights: Weights, features: Float32Array): Float32Array
  evaluate(weights: Weights, dataset: Dataset): Evaluation
  /** The weights as an ONNX model file (deterministic bytes for the same weights and options). */
  exportOnnx(weights: Weights, options?: MlpExportOptions): Uint8Array
}

// ---- the built-in MLP ----

/** A dense layer: `y = x · weight + bias`, `weight` is `inputs × outputs`, row-major. */
export interface DenseLayer {
  inputs: number
  outputs: number
  weight: Float32Array
  bias: Float32Array
}

export interface MlpWeights {
  /** Multiplies the raw features before the first layer (exported as a Mul node). */
  inputScale: number
  /** Hidden layers (ReLU) then the output layer (softmax). */
  layers: DenseLayer[]
}

export interface MlpOptions {
  /** Widths of the hidden layers, e.g. [32]. */
  hidden: readonly number[]
  epochs: number
  seed: number
  /** @default 32 */
  batchSize?: number
  /** @default 0.001 (adam), 0.05 (sgd) */
  learningRate?: number
  /** @default 'adam' */
  optimizer?: 'adam' | 'sgd'
  /** L2 penalty added to the weight gradients (not the biases). @default 0 */
  l2?: number
  /** Applied to the raw features inside the model, e.g. 1/16 for 0-16 pixels. @default 1 */
  inputScale?: number
  /** Start from these weights instead of a fresh initialisation (fine-tuning, federated rounds). */
  initial?: MlpWeights
}

const ADAM_BETA1 = 0.9
const ADAM_BETA2 = 0.999
const ADAM_EPSILON = 1e-8
const SGD_MOMENTUM = 0.9

/** Trainable state in float64: one entry per layer. */
interface Params {
  layers: { inputs: number; outputs: number; w: Float64Array; b: Float64Array }[]
}

function initParams(featureCount: number, classCount: number, options: MlpOptions): Params {
  const widths = [featureCount, ...options.hidden, classCount]
  if (options.initial) {
    const got = [options.initial.layers[0]?.inputs, ...options.initial.layers.map((l) => l.outputs)]
    if (got.join() !== widths.join())
      throw new InvalidInputError(`initial weights have widths [${got.join(',')}], expected [${widths.join(',')}]`)
    return {
      layers: options.initial.layers.map((l) => ({
        inputs: l.inputs,
        outputs: l.outputs,
        w: Float64Array.from(l.weight),
        b: Float64Array.from(l.bias),
      })),
    }
  }
  const rng = createRng(options.seed)
  const layers = widths.slice(1).map((outputs, k) => {
    const inputs = widths[k]!
    const std = Math.sqrt(2 / inputs) // He initialisation for ReLU
    return {
      inputs,
      outputs,
      w: Float64Array.from({ length: inputs * outputs }, () => rng.normal() * std),
      b: new Float64Array(outputs),
    }
  })
  return { layers }
}

/** Per-example scratch: activations per layer (index 0 = scaled input). */
function activationBuffers(p: Params): Float64Array[] {
  return [new Float64Array(p.layers[0]!.inputs), ...p.layers.map((l) => new Float64Array(l.outputs))]
}

/** `out = in · w + b`, skipping zero inputs (one-hot and ReLU outputs are mostly zero). */
function dense(input: Float64Array, w: ArrayLike<number>, b: ArrayLike<number>, out: Float64Array): void {
  const n = out.length
  for (let j = 0; j < n; j++) out[j] = b[j]!
  for (let i = 0; i < input.length; i++) {
    const x = input[i]!
    if (x === 0) continue
    const row = i * n
    for (let j = 0; j < n; j++) out[j]! += x * w[row + j]!
  }
}

function relu(v: Float64Array): void {
  for (let j = 0; j < v.length; j++) if (v[j]! < 0) v[j] = 0
}

function softmax(v: Float64Array): void {
  let max = -Infinity
  for (const x of v) if (x > max) max = x
  let sum = 0
  for (let j = 0; j < v.length; j++) {
    v[j] = Math.exp(v[j]! - max)
    sum += v[j]!
  }
  for (let j = 0; j < v.length; j++) v[j]! /= sum
}

type LayerView = { w: ArrayLike<number>; b: ArrayLike<number> }

/** Runs one example through the network; `acts` ends with the class probabilities. */
function forward(layers: readonly LayerView[], scale: number, x: ArrayLike<number>, acts: Float64Array[]): void {
  const input = acts[0]!
  for (let i = 0; i < input.length; i++) input[i] = x[i]! * scale
  layers.forEach((l, k) => {
    const out = acts[k + 1]!
    dense(acts[k]!, l.w, l.b, out)
    if (k < layers.length - 1) relu(out)
    else softmax(out)
  })
}

/** Adds this example's gradients to `grads`, given `acts` from `forward`. Returns its loss. */
function backward(p: Params, acts: Float64Array[], label: number, grads: Params, deltas: Float64Array[]): number {
  const last = p.layers.length - 1
  const probs = acts[last + 1]!
  const loss = -Math.log(Math.max(probs[label]!, 1e-12))
  const top = deltas[last]!
  for (let j = 0; j < top.length; j++) top[j] = probs[j]! - (j === label ? 1 : 0)
  for (let k = last; k >= 0; k--) {
    const { inputs, outputs, w } = p.layers[k]!
    const g = grads.layers[k]!
    const delta = deltas[k]!
    const a = acts[k]!
    for (let j = 0; j < outputs; j++) g.b[j]! += delta[j]!
    for (let i = 0; i < inputs; i++) {
      const x = a[i]!
      if (x === 0) continue
      const row = i * outputs
      for (let j = 0; j < outputs; j++) g.w[row + j]! += x * delta[j]!
    }
    if (k === 0) break
    const below = deltas[k - 1]!
    for (let i = 0; i < inputs; i++) {
      if (a[i]! <= 0) {
        below[i] = 0 // ReLU gradient is zero where the unit was off
        continue
      }
      let s = 0
      const row = i * outputs
      for (let j = 0; j < outputs; j++) s += w[row + j]! * delta[j]!
      below[i] = s
    }
  }
  return loss
}

function zerosLike(p: Params): Params {
  return {
    layers: p.layers.map((l) => ({
      inputs: l.inputs,
      outputs: l.outputs,
      w: new Float64Array(l.w.length),
      b: new Float64Array(l.b.length),
    })),
  }
}

function clear(p: Params): void {
  for (const l of p.layers) {
    l.w.fill(0)
    l.b.fill(0)
  }
}

/** One optimizer step over every parameter array. */
interface Optimizer {
  step(params: Params, grads: Params, batch: number): void
}

function createOptimizer(p: Params, options: MlpOptions): Optimizer {
  const kind = options.optimizer ?? 'adam'
  const lr = options.learningRate ?? (kind === 'adam' ? 0.001 : 0.05)
  const l2 = options.l2 ?? 0
  const m = zerosLike(p)
  const v = zerosLike(p)
  let t = 0
  const update = (
    param: Float64Array,
    grad: Float64Array,
    mm: Float64Array,
    vv: Float64Array,
    batch: number,
    decay: number,
  ): void => {
    const c1 = 1 - ADAM_BETA1 ** t
    const c2 = 1 - ADAM_BETA2 ** t
    for (let i = 0; i < param.length; i++) {
      const g = grad[i]! / batch + decay * param[i]!
      if (kind === 'sgd') {
        mm[i] = SGD_MOMENTUM * mm[i]! + g
        param[i]! -= lr * mm[i]!
        continue
      }
      mm[i] = ADAM_BETA1 * mm[i]! + (1 - ADAM_BETA1) * g
      vv[i] = ADAM_BETA2 * vv[i]! + (1 - ADAM_BETA2) * g * g
      param[i]! -= (lr * (mm[i]! / c1)) / (Math.sqrt(vv[i]! / c2) + ADAM_EPSILON)
    }
  }
  return {
    step(params, grads, batch) {
      t++
      params.layers.forEach((l, k) => {
        update(l.w, grads.layers[k]!.w, m.layers[k]!.w, v.layers[k]!.w, batch, l2)
        update(l.b, grads.layers[k]!.b, m.layers[k]!.b, v.layers[k]!.b, batch, 0)
      })
    },
  }
}

function checkOptions(d: Dataset, options: MlpOptions): void {
  checkDataset(d)
  if (datasetSize(d) === 0) throw new InvalidInputError('cannot train on an empty dataset')
  if (!Number.isSafeInteger(options.epochs) || options.epochs < 0)
    throw new InvalidInputError('epochs must be \u2265 0')
  if (options.hidden.some((h) => !Number.isSafeInteger(h) || h < 1))
    throw new InvalidInputError('hidden widths must be positive integers')
  const batch = options.batchSize ?? 32
  if (!Number.isSafeInteger(batch) || batch < 1) throw new InvalidInputError('batchSize must be \u2265 1')
}

function toWeights(p: Params, inputScale: number): MlpWeights {
  return {
    inputScale,
    layers: p.layers.map((l) => ({
      inputs: l.inputs,
      outputs: l.outputs,
      weight: Float32Array.from(l.w),
      bias: Float32Array.from(l.b),
    })),
  }
}

/** One pass over the data in a seeded order. Returns the mean loss. */
function trainEpoch(
  p: Params,
  d: Dataset,
  order: Int32Array,
  batchSize: number,
  scale: number,
  opt: Optimizer,
): number {
  const acts = activationBuffers(p)
  const deltas = p.layers.map((l) => new Float64Array(l.outputs))
  const grads = zerosLike(p)
  let total = 0
  for (let start = 0; start < order.length; start += batchSize) {
    const end = Math.min(start + batchSize, order.length)
    clear(grads)
    for (let k = start; k < end; k++) {
      const i = order[k]!
      forward(p.layers, scale, d.features.subarray(i * d.featureCount, (i + 1) * d.featureCount), acts)
      total += backward(p, acts, d.labels[i]!, grads, deltas)
    }
    opt.step(p, grads, end - start)
  }
  return total / order.length
}

async function trainMlp(d: Dataset, options: MlpOptions, context: TrainContext = {}): Promise<MlpWeights> {
  checkOptions(d, options)
  const scale = options.inputScale ?? options.initial?.inputScale ?? 1
  const params = initParams(d.featureCount, d.classCount, options)
  const optimizer = createOptimizer(params, options)
  // A stream separate from initialisation, so fine-tuning and fresh runs shuffle alike.
  const rng = createRng((options.seed ^ 0x5eed5eed) >>> 0)
  const order = Int32Array.from({ length: datasetSize(d) }, (_, i) => i)
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    if (context.signal?.aborted) throw new AbortError('training was cancelled')
    const loss = trainEpoch(params, d, rng.shuffle(order), options.batchSize ?? 32, scale, optimizer)
    context.onEpoch?.(epoch, loss)
    await yieldToEventLoop()
  }
  return toWeights(params, scale)
}

function predictMlp(weights: MlpWeights, features: Float32Array): Float32Array {
  const first = weights.layers[0]
  const lastLayer = weights.layers[weights.layers.length - 1]
  if (!first || !lastLayer) throw new InvalidInputError('the network has no layers')
  if (features.length % first.inputs !== 0)
    throw new InvalidInputError(`features must be rows of ${first.inputs} values`)
  const views = weights.layers.map((l) => ({ w: l.weight, b: l.bias }))
  const acts = [new Float64Array(first.inputs), ...weights.layers.map((l) => new Float64Array(l.outputs))]
  const rows = features.length / first.inputs
  const out = new Float32Array(rows * lastLayer.outputs)
  for (let r = 0; r < rows; r++) {
    forward(views, weights.inputScale, features.subarray(r * first.inputs, (r + 1) * first.inputs), acts)
    out.set(acts[acts.length - 1]!, r * lastLayer.outputs)
  }
  return out
}

function evaluateMlp(weights: MlpWeights, d: Dataset): Evaluation {
  checkDataset(d)
  const probs = predictMlp(weights, d.features)
  const n = datasetSize(d)
  let correct = 0
  let loss = 0
  for (let r = 0; r < n; r++) {
    const row = probs.subarray(r * d.classCount, (r + 1) * d.classCount)
    let best = 0
    for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j
    if (best === d.labels[r]) correct++
    loss -= Math.log(Math.max(row[d.labels[r]!]!, 1e-12))
  }
  return { accuracy: n === 0 ? 0 : correct / n, loss: n === 0 ? 0 : loss / n, count: n }
}

/** The built-in multi-layer perceptron trainer. */
export const mlpTrainer: Trainer<MlpOptions, MlpWeights> = {
  name: 'mlp',
  train: trainMlp,
  predict: predictMlp,
  evaluate: evaluateMlp,
  exportOnnx: (weights, options) => mlpToOnnx(weights, options),
}
