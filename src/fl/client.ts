/**
 * One federated client's round (issue 15, part 3): start from the global weights, train on the
 * local shard with the built-in MLP trainer, send back the difference. Also the behaviours a
 * client may have in tests and demos - honest, or the classic sign-flipping attacker that sends
 * -scale × its honest update - so simulations and the robustness test name them alike.
 */
import { InvalidInputError } from '../core/errors.ts'
import { datasetSize, mlpTrainer, type Dataset, type MlpOptions, type MlpWeights } from '../inference/trainer.ts'
import { updateOf } from './weights.ts'

export interface RoundInput {
  global: MlpWeights
  shard: Dataset
  /** Local epochs over the shard (>= 1). */
  epochs: number
  learningRate: number
  /** Seeds the local batch order. */
  seed: number
  signal?: AbortSignal
  /** @default 32 */
  batchSize?: number
  /** @default 'adam' */
  optimizer?: MlpOptions['optimizer']
  /** @default 0 */
  l2?: number
}

export interface RoundResult {
  /** Local weights - global weights, flattened (src/fl/weights.ts). */
  update: Float32Array
  /** Examples in the shard: FedAvg's weight for this update. */
  samples: number
  /** Mean training loss of the last local epoch. */
  loss: number
}

/** Trains from `global` on `shard` and returns local - global. */
export async function trainRound(input: RoundInput): Promise<RoundResult> {
  if (!Number.isSafeInteger(input.epochs) || input.epochs < 1)
    throw new InvalidInputError(`a round needs at least one local epoch, got ${input.epochs}`)
  if (!(input.learningRate > 0)) throw new InvalidInputError(`the learning rate must be > 0, got ${input.learningRate}`)
  let loss = Number.NaN
  const local = await mlpTrainer.train(
    input.shard,
    {
      hidden: input.global.layers.slice(0, -1).map((l) => l.outputs),
      epochs: input.epochs,
      seed: input.seed,
      batchSize: input.batchSize,
      learningRate: input.learningRate,
      optimizer: input.optimizer,
      l2: input.l2,
      initial: input.global,
    },
    { signal: input.signal, onEpoch: (_, epochLoss) => void (loss = epochLoss) },
  )
  return { update: updateOf(local, input.global), samples: datasetSize(input.shard), loss }
}

/** The sign-flipping attack: -scale × update, in a new vector. */
export function signFlip(update: Float32Array, scale: number): Float32Array {
  if (!(Number.isFinite(scale) && scale > 0)) throw new InvalidInputError(`the attack scale must be > 0, got ${scale}`)
  const out = new Float32Array(update.length)
  for (let j = 0; j < update.length; j++) out[j] = -scale * update[j]!
  return out
}

/** The sign-flip attack's scale when none is given. */
export const SIGN_FLIP_SCALE = 4

/** What a client does to its honest update before sending it. */
export type FlBehaviour = (update: Float32Array, scale?: number) => Float32Array

export const FL_BEHAVIOURS = {
  honest: (update) => update,
  'sign-flip': (update, scale = SIGN_FLIP_SCALE) => signFlip(update, scale),
} as const satisfies Record<string, FlBehaviour>

export type FlBehaviourName = keyof typeof FL_BEHAVIOURS
