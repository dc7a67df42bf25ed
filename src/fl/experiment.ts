/**
 * An in-process federated run (issue 15, part 3), for the robustness test and demos: a seeded,
 * stratified train/test split; the training part dealt to the clients non-IID; rounds of local
 * training from the global weights (attackers sign-flip their honest update); the chosen rule
 * aggregates; the global model is scored on the held-out part after every round. Beside it, the
 * same MLP trained centrally on the union of the shards from the same initial weights, for the
 * same number of passes over the data (rounds × local epochs), so "as good as centralised" means
 * something. Every draw comes from `seed`; the run yields to the event loop between clients.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import { AbortError, InvalidInputError } from '../core/errors.ts'
import {
  mlpTrainer,
  splitDataset,
  type Dataset,
  type Evaluation,
  type MlpOptions,
  type MlpWeights,
} from '../inference/trainer.ts'
import { aggregate, checkConditions, type AggregationRule } from './aggregate.ts'
import { FL_BEHAVIOURS, SIGN_FLIP_SCALE, trainRound } from './client.ts'
import { describeShards, dirichletShards, labelSkewShards, type Shard, type ShardSummary } from './shards.ts'
import { applyUpdate } from './weights.ts'

export type ShardSpec = { kind: 'label-skew'; classesPerClient: number } | { kind: 'dirichlet'; alpha: number }

export interface FederatedOptions {
  dataset: Dataset
  /** @default 12 */
  clients?: number
  shards: ShardSpec
  rounds: number
  rule: AggregationRule
  /** Byzantine updates the rule is told to tolerate. */
  f: number
  /** Clients (by index) that sign-flip their update. @default none */
  attackers?: readonly number[]
  /** @default SIGN_FLIP_SCALE (4) */
  attackScale?: number
  seed: number
  localEpochs: number
  /** @default 0.003 */
  learningRate?: number
  /** @default [32] */
  hidden?: readonly number[]
  /** @default 1 */
  inputScale?: number
  /** @default 32 */
  batchSize?: number
  /** @default 'adam' */
  optimizer?: MlpOptions['optimizer']
  /** Held-out share of each class. @default 0.2 */
  testFraction?: number
  /** Trimmed mean's cut and multi-Krum's m (see AggregationOptions). */
  trim?: number
  m?: number
  /** Train the centralised baseline too. @default true */
  centralised?: boolean
  signal?: AbortSignal
  onRound?: (round: number, accuracy: number) => void
}

export interface FederatedResult {
  /** Test accuracy of the global model after each round. */
  accuracyPerRound: number[]
  final: Evaluation
  /** The same MLP trained on the union of the shards (absent when `centralised: false`). */
  centralised?: Evaluation
  shards: ShardSummary[]
  /** The updates the rule kept, per round. */
  selectedPerRound: number[][]
}

/** Seeds derived from the run's seed, one per purpose (split, shards, init, client c in round r). */
function derive(seed: number, ...parts: number[]): number {
  let h = seed >>> 0
  for (const p of parts) h = Math.imul(h ^ (p + 0x9e3779b9), 0x85ebca6b) >>> 0
  return h
}

function makeShards(train: Dataset, clients: number, spec: ShardSpec, seed: number): Shard[] {
  return spec.kind === 'label-skew'
    ? labelSkewShards(train, clients, { classesPerClient: spec.classesPerClient, seed })
    : dirichletShards(train, clients, { alpha: spec.alpha, seed })
}

export async function runFederated(options: FederatedOptions): Promise<FederatedResult> {
  const clients = options.clients ?? 12
  const attackers = new Set(options.attackers ?? [])
  for (const a of attackers)
    if (!Number.isSafeInteger(a) || a < 0 || a >= clients) throw new InvalidInputError(`attacker ${a} is not a client`)
  if (!Number.isSafeInteger(options.rounds) || options.rounds < 1)
    throw new InvalidInputError('rounds must be \u2265 1')
  checkConditions(options.rule, clients, options.f, options)
  const { train, test } = splitDataset(options.dataset, {
    seed: derive(options.seed, 1),
    testFraction: options.testFraction,
  })
  const shards = makeShards(train, clients, options.shards, derive(options.seed, 2))
  const mlp: MlpOptions = {
    hidden: options.hidden ?? [32],
    epochs: 0,
    seed: derive(options.seed, 3),
    batchSize: options.batchSize,
    learningRate: options.learningRate ?? 0.003,
    optimizer: options.optimizer,
    inputScale: options.inputScale,
  }
  const initial = await mlpTrainer.train(train, mlp)
  let global: MlpWeights = initial
  const accuracyPerRound: number[] = []
  const selectedPerRound: number[][] = []
  for (let round = 0; round < options.rounds; round++) {
    const updates: Float32Array[] = []
    const samples: number[] = []
    for (let c = 0; c < clients; c++) {
      if (options.signal?.aborted) throw new AbortError('the federated run was cancelled')
      const local = await trainRound({
        global,
        shard: shards[c]!.data,
        epochs: options.localEpochs,
        learningRate: mlp.learningRate!,
        seed: derive(options.seed, 4, round, c),
        batchSize: options.batchSize,
        optimizer: options.optimizer,
        signal: options.signal,
      })
      const behaviour = attackers.has(c) ? FL_BEHAVIOURS['sign-flip'] : FL_BEHAVIOURS.honest
      updates.push(behaviour(local.update, options.attackScale ?? SIGN_FLIP_SCALE))
      samples.push(local.samples)
      await yieldToEventLoop()
    }
    const { result, selected } = aggregate(updates, {
      rule: options.rule,
      f: options.f,
      weights: samples,
      trim: options.trim,
      m: options.m,
    })
    global = applyUpdate(global, result)
    selectedPerRound.push(selected)
    const accuracy = mlpTrainer.evaluate(global, test).accuracy
    accuracyPerRound.push(accuracy)
    options.onRound?.(round, accuracy)
  }
  const out: FederatedResult = {
    accuracyPerRound,
    final: mlpTrainer.evaluate(global, test),
    shards: describeShards(shards),
    selectedPerRound,
  }
  if (options.centralised ?? true) {
    // The union of the shards is the training part: every example is in exactly one shard.
    const central = await mlpTrainer.train(
      train,
      { ...mlp, epochs: options.rounds * options.localEpochs, initial },
      { signal: options.signal },
    )
    out.centralised = mlpTrainer.evaluate(central, test)
  }
  return out
}
