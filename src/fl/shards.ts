/**
 * Non-IID splits of a dataset among federated clients (issue 15, part 3), seeded, every example
 * given to exactly one client, no client left empty:
 *
 *  - label skew: each client holds `classesPerClient` classes (a seeded rotation of the classes,
 *    so every class has a holder when clients × classesPerClient >= classes); each class's
 *    examples are shuffled and dealt evenly among its holders;
 *  - Dirichlet: each class is divided among the clients in proportions drawn from Dir(alpha) - small alpha
 *    concentrates a class on few clients, large alpha approaches an even split.
 *
 * Real federations are non-IID (a phone sees its owner's digits); robust aggregation must not
 * mistake an honest but different client for an attacker, so tests run on these splits.
 */
import { InvalidInputError } from '../core/errors.ts'
import { createRng, datasetSize, subset, type Dataset, type Rng } from '../inference/trainer.ts'

export interface Shard {
  /** Indices into the dataset that was split, ascending. */
  indices: Int32Array
  data: Dataset
}

export interface LabelSkewOptions {
  classesPerClient: number
  seed: number
}

export interface DirichletOptions {
  /** Concentration, > 0: 0.1 is extreme skew, 1 moderate, 100 nearly IID. */
  alpha: number
  seed: number
}

function checkSplit(dataset: Dataset, clients: number): void {
  if (!Number.isSafeInteger(clients) || clients < 1)
    throw new InvalidInputError(`clients must be \u2265 1, got ${clients}`)
  if (clients > datasetSize(dataset))
    throw new InvalidInputError(`${datasetSize(dataset)} examples cannot give ${clients} clients one each`)
}

/** The dataset's indices by class, each list shuffled with `rng` (classes in order). */
function shuffledByClass(dataset: Dataset, rng: Rng): number[][] {
  const byClass: number[][] = Array.from({ length: dataset.classCount }, () => [])
  dataset.labels.forEach((y, i) => byClass[y]!.push(i))
  for (const members of byClass) rng.shuffle(members)
  return byClass
}

function toShards(dataset: Dataset, perClient: number[][]): Shard[] {
  return perClient.map((list) => {
    const indices = Int32Array.from(list).sort()
    return { indices, data: subset(dataset, indices) }
  })
}

/** Each client holds `classesPerClient` classes; each class is dealt evenly among its holders. */
export function labelSkewShards(dataset: Dataset, clients: number, options: LabelSkewOptions): Shard[] {
  checkSplit(dataset, clients)
  const k = options.classesPerClient
  const classes = dataset.classCount
  if (!Number.isSafeInteger(k) || k < 1 || k > classes)
    throw new InvalidInputError(`classesPerClient must be 1..${classes}, got ${k}`)
  if (clients * k < classes)
    throw new InvalidInputError(`${clients} clients × ${k} classes cannot cover ${classes} classes`)
  const rng = createRng(options.seed)
  const order = rng.shuffle(Array.from({ length: classes }, (_, c) => c))
  const holders: number[][] = Array.from({ length: classes }, () => [])
  for (let client = 0; client < clients; client++)
    for (let q = 0; q < k; q++) holders[order[(client * k + q) % classes]!]!.push(client)
  const perClient: number[][] = Array.from({ length: clients }, () => [])
  shuffledByClass(dataset, rng).forEach((members, c) => {
    const hs = holders[c]!
    members.forEach((i, r) => perClient[hs[r % hs.length]!]!.push(i))
  })
  const empty = perClient.findIndex((list) => list.length === 0)
  if (empty >= 0) throw new InvalidInputError(`client ${empty} would get no examples: its classes are too small`)
  return toShards(dataset, perClient)
}

/** Gamma(shape, 1) (Marsaglia and Tsang; shape < 1 boosted by U^(1/shape)). */
function gamma(rng: Rng, shape: number): number {
  if (shape < 1) return gamma(rng, shape + 1) * Math.pow(1 - rng.next(), 1 / shape)
  const d = shape - 1 / 3
  const c = 1 / Math.sqrt(9 * d)
  for (;;) {
    const x = rng.normal()
    const v = (1 + c * x) ** 3
    if (v <= 0) continue
    const u = 1 - rng.next()
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v
  }
}

/**
 * Each class divided among the clients in Dir(alpha) proportions (cut points rounded down the
 * cumulative shares). A client left empty then takes one example from the largest client (the
 * lowest-numbered of equals), so no client is idle.
 */
export function dirichletShards(dataset: Dataset, clients: number, options: DirichletOptions): Shard[] {
  checkSplit(dataset, clients)
  if (!(Number.isFinite(options.alpha) && options.alpha > 0))
    throw new InvalidInputError(`alpha must be > 0, got ${options.alpha}`)
  const rng = createRng(options.seed)
  const perClient: number[][] = Array.from({ length: clients }, () => [])
  for (const members of shuffledByClass(dataset, rng)) {
    const draws = Array.from({ length: clients }, () => gamma(rng, options.alpha))
    const total = draws.reduce((a, b) => a + b, 0)
    let cumulative = 0
    let start = 0
    draws.forEach((g, client) => {
      cumulative += g
      const end = client === clients - 1 ? members.length : Math.floor((cumulative / total) * members.length)
      perClient[client]!.push(...members.slice(start, end))
      start = Math.max(start, end)
    })
  }
  for (let client = 0; client < clients; client++) {
    if (perClient[client]!.length > 0) continue
    let largest = 0
    perClient.forEach((list, c) => {
      if (list.length > perClient[largest]!.length) largest = c
    })
    perClient[client]!.push(perClient[largest]!.pop()!)
  }
  return toShards(dataset, perClient)
}

export interface ShardSummary {
  client: number
  size: number
  /** Examples of each class, indexed by class. */
  classes: number[]
}

/** Per-client class histograms. */
export function describeShards(shards: readonly Shard[]): ShardSummary[] {
  return shards.map((s, client) => {
    const classes = new Array<number>(s.data.classCount).fill(0)
    for (const y of s.data.labels) classes[y]!++
    return { client, size: datasetSize(s.data), classes }
  })
}

/** The histograms as text lines, e.g. `client 3 (118): 0:61 7:57`, for logs and test diagnostics. */
export function formatShards(shards: readonly Shard[]): string[] {
  return describeShards(shards).map(
    ({ client, size, classes }) =>
      `client ${client} (${size}): ${classes.flatMap((count, c) => (count > 0 ? [`${c}:${count}`] : [])).join(' ')}`,
  )
}
