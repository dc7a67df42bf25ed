// The aggregation rules on inputs small enough to compute by hand, their conditions, their
// determinism, their agreement with plain sort-based reference versions on random inputs, and
// the robustness each is for: Krum keeps the honest cluster, median and Bulyan shrug off huge
// outliers that drag FedAvg away.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRng } from '../inference/trainer.ts'
import {
  AGGREGATION_RULES,
  AggregationError,
  aggregate,
  checkConditions,
  distanceKernel,
  pairwiseDistances,
  selectInPlace,
  type AggregationOptions,
  type AggregationRule,
} from './aggregate.ts'

const vectors = (...rows: number[][]): Float32Array[] => rows.map((r) => Float32Array.from(r))
const run = (updates: Float32Array[], options: AggregationOptions): number[] => [...aggregate(updates, options).result]

// Five 2-D updates: four on a line, one far away.
const FIVE = vectors([1, 10], [2, 20], [3, 30], [4, 40], [100, -50])

test('FedAvg: the plain mean, or weighted by sample counts', () => {
  assert.deepEqual(run(FIVE, { rule: 'fedavg', f: 0 }), [22, 10])
  assert.deepEqual(run(FIVE, { rule: 'fedavg', f: 0, weights: [1, 2, 3, 4, 0] }), [3, 30])
  assert.deepEqual(aggregate(FIVE, { rule: 'fedavg', f: 0 }).selected, [0, 1, 2, 3, 4])
  assert.throws(() => aggregate(FIVE, { rule: 'fedavg', f: 0, weights: [1, 1] }), /2 weights for 5 updates/)
  assert.throws(() => aggregate(FIVE, { rule: 'fedavg', f: 0, weights: [1, 1, 1, -1, 1] }), /weight 3/)
  assert.throws(() => aggregate(FIVE, { rule: 'fedavg', f: 0, weights: [0, 0, 0, 0, 0] }), /sum to 0/)
})

test('coordinate-wise median: middle value (odd n), mean of the two middle values (even n)', () => {
  assert.deepEqual(run(FIVE, { rule: 'median', f: 1 }), [3, 20])
  assert.deepEqual(run(FIVE.slice(0, 4), { rule: 'median', f: 1 }), [2.5, 25])
  assert.deepEqual(run(FIVE.slice(0, 1), { rule: 'median', f: 0 }), [1, 10])
})

test('trimmed mean: cuts trim values at each end of every coordinate (trim defaults to f)', () => {
  assert.deepEqual(run(FIVE, { rule: 'trimmed-mean', f: 1 }), [3, 20])
  assert.deepEqual(run(FIVE, { rule: 'trimmed-mean', f: 0, trim: 1 }), [3, 20])
  assert.deepEqual(run(FIVE.slice(0, 4), { rule: 'trimmed-mean', f: 1 }), [2.5, 25])
  assert.deepEqual(run(FIVE, { rule: 'trimmed-mean', f: 0 }), [22, 10])
})

test('Krum and multi-Krum: scores are sums of the n − f − 2 smallest squared distances', () => {
  // Squared distances: neighbours on the line 101 apart, two steps 404, three 909; the outlier
  // ≥ 13401 from all. With f = 1 each score sums the 2 nearest: 505, 202, 202, 505, 27905.
  const krum = aggregate(FIVE, { rule: 'krum', f: 1 })
  assert.deepEqual(krum.selected, [1], 'a tie (202 = 202) goes to the lower index')
  assert.deepEqual([...krum.result], [2, 20])
  const three = aggregate(FIVE, { rule: 'multi-krum', f: 1, m: 3 })
  assert.deepEqual(three.selected, [0, 1, 2])
  assert.deepEqual([...three.result], [2, 20])
  const byDefault = aggregate(FIVE, { rule: 'multi-krum', f: 1 })
  assert.deepEqual(byDefault.selected, [0, 1, 2, 3], 'm = n − f by default; the outlier is out')
  assert.deepEqual([...byDefault.result], [2.5, 25])
})

test('Bulyan: θ = n − 2f chosen by iterated Krum, then per coordinate the β = θ − 2f values nearest the median', () => {
  // 1-D, n = 7, f = 1: θ = 5, β = 3. Krum rounds pick 2 (score 10), 1 (14, tie with 3 → lower
  // index), 3 (10), 0 (16, tie with 4), then 4 (nothing left to compare: scores 0, lowest index).
  const updates = vectors([0], [1], [2], [3], [4], [100], [-100])
  const b = aggregate(updates, { rule: 'bulyan', f: 1 })
  assert.deepEqual(b.selected, [0, 1, 2, 3, 4])
  // Sorted 0 1 2 3 4, median 2: the three nearest are 1 2 3.
  assert.deepEqual([...b.result], [2])
  // Second coordinate skewed: the window shrinks from the far end.
  const skewed = vectors([0, 0], [1, 0.5], [2, 1], [3, 1.5], [4, 8], [100, 0], [-100, 0])
  const s = aggregate(skewed, { rule: 'bulyan', f: 1 })
  assert.deepEqual(s.selected, [0, 1, 2, 3, 4])
  // Sorted 0 0.5 1 1.5 8, median 1: drop 8 (7 away), then 0 (1 away) vs 1.5 (0.5) → 0.5 1 1.5.
  assert.deepEqual([...s.result], [2, 1])
})

test('conditions are checked first, with messages that name the rule and the bound', () => {
  assert.throws(() => checkConditions('krum', 4, 1), /krum needs n ≥ 2f \+ 3, got n = 4, f = 1/)
  assert.doesNotThrow(() => checkConditions('krum', 5, 1))
  assert.throws(() => checkConditions('multi-krum', 6, 2), /n ≥ 2f \+ 3/)
  assert.throws(() => checkConditions('multi-krum', 5, 1, { m: 6 }), /m ≤ n/)
  assert.throws(() => checkConditions('multi-krum', 5, 1, { m: 0 }), /m must be an integer ≥ 1/)
  assert.throws(() => checkConditions('bulyan', 10, 2), /bulyan needs n ≥ 4f \+ 3/)
  assert.doesNotThrow(() => checkConditions('bulyan', 11, 2))
  assert.throws(() => checkConditions('trimmed-mean', 4, 2), /n > 2·trim \(trim = 2\)/)
  assert.throws(() => checkConditions('trimmed-mean', 5, 0, { trim: 3 }), /n > 2·trim/)
  assert.throws(() => checkConditions('median', 0, 0), /n must be an integer ≥ 1/)
  assert.throws(() => checkConditions('fedavg', 3, -1), /f must be an integer ≥ 0/)
  assert.throws(() => checkConditions('fedavg', 3, 0.5), AggregationError)
  assert.throws(() => checkConditions('mean' as AggregationRule, 3, 0), /unknown aggregation rule mean/)
  // aggregate() refuses before touching the data
  assert.throws(() => aggregate(FIVE.slice(0, 4), { rule: 'krum', f: 1 }), AggregationError)
  assert.throws(() => aggregate([], { rule: 'median', f: 0 }), /n must be an integer ≥ 1/)
  const err = (() => {
    try {
      aggregate(FIVE, { rule: 'bulyan', f: 1 })
    } catch (e) {
      return e
    }
  })()
  assert.ok(err instanceof AggregationError)
  assert.equal(err.code, 'FL_AGGREGATION')
  assert.deepEqual(err.details, { rule: 'bulyan', n: 5, f: 1 })
})

test('updates of different lengths, and updates holding NaN or Infinity, are refused by index', () => {
  assert.throws(
    () => aggregate(vectors([1, 2], [1, 2, 3], [1, 2]), { rule: 'fedavg', f: 0 }),
    /update 1 has 3 values, update 0 has 2/,
  )
  for (const bad of [Number.NaN, Infinity, -Infinity]) {
    for (const rule of AGGREGATION_RULES) {
      const updates = vectors([1, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2])
      updates[2]![1] = bad
      assert.throws(
        () => aggregate(updates, { rule, f: 1 }),
        (e: unknown) =>
          e instanceof AggregationError &&
          /update 2 holds (NaN|-?Infinity) at coordinate 1/.test(e.message) &&
          e.details.index === 2,
        `${rule} with ${bad}`,
      )
    }
  }
})

function randomUpdates(n: number, d: number, seed: number, levels = 0): Float32Array[] {
  const rng = createRng(seed)
  return Array.from({ length: n }, () =>
    Float32Array.from({ length: d }, () => (levels > 0 ? rng.int(levels) - levels / 2 : rng.normal())),
  )
}

const bytes = (v: Float32Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength)

test('deterministic: the same updates give the same bytes, and the inputs are left untouched', () => {
  const updates = randomUpdates(15, 3000, 11)
  const copies = updates.map((u) => u.slice())
  for (const rule of AGGREGATION_RULES) {
    const a = aggregate(updates, { rule, f: 3 })
    const b = aggregate(
      copies.map((u) => u.slice()),
      { rule, f: 3 },
    )
    assert.ok(bytes(a.result).equals(bytes(b.result)), rule)
    assert.deepEqual(a.selected, b.selected)
    updates.forEach((u, i) => assert.ok(bytes(u).equals(bytes(copies[i]!)), `${rule} left update ${i} as it was`))
  }
})

// ---- plain reference versions: sort every coordinate, compute distances pair by pair ----

function column(updates: Float32Array[], j: number, among = updates.map((_, i) => i)): number[] {
  return among.map((i) => updates[i]![j]!).sort((a, b) => a - b)
}

function referenceKrumScores(updates: Float32Array[], among: number[], f: number): Map<number, number> {
  const dist = (a: Float32Array, b: Float32Array): number => a.reduce((s, x, j) => s + (x - b[j]!) ** 2, 0)
  const nearest = Math.max(0, among.length - f - 2)
  return new Map(
    among.map((i) => {
      const ds = among
        .filter((o) => o !== i)
        .map((o) => dist(updates[i]!, updates[o]!))
        .sort((a, b) => a - b)
      return [i, ds.slice(0, nearest).reduce((s, x) => s + x, 0)]
    }),
  )
}

function reference(updates: Float32Array[], rule: AggregationRule, f: number): number[] {
  const n = updates.length
  const d = updates[0]!.length
  const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length
  const coords = (fn: (j: number) => number): number[] => Array.from({ length: d }, (_, j) => fn(j))
  const best = (scores: Map<number, number>, count: number): number[] =>
    [...scores.entries()]
      .sort((a, b) => a[1] - b[1] || a[0] - b[0])
      .slice(0, count)
      .map(([i]) => i)
  switch (rule) {
    case 'fedavg':
      return coords((j) => mean(updates.map((u) => u[j]!)))
    case 'median':
      return coords((j) => {
        const c = column(updates, j)
        return n % 2 ? c[(n - 1) / 2]! : (c[n / 2 - 1]! + c[n / 2]!) / 2
      })
    case 'trimmed-mean':
      return coords((j) => mean(column(updates, j).slice(f, n - f)))
    case 'krum':
    case 'multi-krum': {
      const chosen = best(referenceKrumScores(updates, [...updates.keys()], f), rule === 'krum' ? 1 : n - f)
      return coords((j) => mean(chosen.map((i) => updates[i]![j]!)))
    }
    case 'bulyan': {
      const remaining = [...updates.keys()]
      const chosen: number[] = []
      while (chosen.length < n - 2 * f) {
        const [pick] = best(referenceKrumScores(updates, remaining, f), 1)
        chosen.push(pick!)
        remaining.splice(remaining.indexOf(pick!), 1)
      }
      const beta = n - 4 * f
      return coords((j) => {
        const c = column(updates, j, chosen)
        const t = c.length
        const med = t % 2 ? c[(t - 1) / 2]! : (c[t / 2 - 1]! + c[t / 2]!) / 2
        let lo = 0
        let hi = t - 1
        while (hi - lo + 1 > beta)
          if (med - c[lo]! > c[hi]! - med) lo++
          else hi--
        return mean(c.slice(lo, hi + 1))
      })
    }
  }
}

test('every rule agrees with a sort-based reference on random updates, with and without ties', () => {
  for (const [n, f, levels] of [
    [11, 2, 0],
    [12, 2, 7],
    [16, 3, 0],
    [16, 3, 3],
  ] as const) {
    const updates = randomUpdates(n, 257, n * 100 + levels, levels)
    for (const rule of AGGREGATION_RULES) {
      if (rule === 'bulyan' && n < 4 * f + 3) continue
      const got = aggregate(updates, { rule, f }).result
      const want = reference(updates, rule, f)
      got.forEach((x, j) =>
        assert.ok(
          Math.abs(x - want[j]!) <= 1e-6 * Math.max(1, Math.abs(want[j]!)),
          `${rule} n=${n} f=${f} levels=${levels} coordinate ${j}: ${x} vs ${want[j]}`,
        ),
      )
    }
  }
})

test('selectInPlace finds the k-th smallest for sorted, reversed, constant and duplicate-heavy input', () => {
  const rng = createRng(5)
  const cases = [
    Float32Array.from({ length: 100 }, (_, i) => i),
    Float32Array.from({ length: 100 }, (_, i) => 100 - i),
    new Float32Array(100).fill(3),
    Float32Array.from({ length: 101 }, () => rng.int(3)),
    Float32Array.from({ length: 7 }, () => rng.normal()),
  ]
  for (const values of cases)
    for (const k of [0, 1, values.length >>> 1, values.length - 1]) {
      const a = values.slice()
      const sorted = values.slice().sort()
      assert.equal(selectInPlace(a, 0, a.length - 1, k), sorted[k])
      for (let i = 0; i < k; i++) assert.ok(a[i]! <= a[k]!)
      for (let i = k + 1; i < a.length; i++) assert.ok(a[i]! >= a[k]!)
    }
})

test('pairwise distances: every pair across coordinate blocks, the same bits with and without WebAssembly', () => {
  const updates = randomUpdates(7, 2501, 3) // crosses two block boundaries, a tail not a multiple of 4
  const dist = pairwiseDistances(updates, 2501)
  for (let a = 0; a < 7; a++)
    for (let b = 0; b < 7; b++) {
      const want = updates[a]!.reduce((s, x, j) => s + (x - updates[b]![j]!) ** 2, 0)
      // float32 lanes within a block of 1024: relative error well under 1e-6
      assert.ok(Math.abs(dist[a * 7 + b]! - want) <= 1e-6 * want, `${a},${b}: ${dist[a * 7 + b]} vs ${want}`)
      assert.equal(dist[a * 7 + b], dist[b * 7 + a])
    }
  assert.equal(distanceKernel(), 'wasm-simd', 'Node 24 has WebAssembly SIMD')
  const inJs = pairwiseDistances(updates, 2501, { simd: false })
  assert.ok(Buffer.from(inJs.buffer).equals(Buffer.from(dist.buffer)), 'the JS lanes reproduce the SIMD kernel exactly')
  const wide = randomUpdates(13, 1030, 8)
  const a = pairwiseDistances(wide, 1030)
  const b = pairwiseDistances(wide, 1030, { simd: false })
  assert.ok(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)))
})

/** n honest updates around `centre` (noise 0.1) followed by f copies of `outlier`. */
function cluster(honest: number, f: number, d: number, centre: number, outlier: (j: number) => number): Float32Array[] {
  const rng = createRng(99)
  return [
    ...Array.from({ length: honest }, () => Float32Array.from({ length: d }, () => centre + 0.1 * rng.normal())),
    ...Array.from({ length: f }, () => Float32Array.from({ length: d }, (_, j) => outlier(j))),
  ]
}

test('Krum and multi-Krum keep the honest cluster when f updates are outliers', () => {
  const updates = cluster(9, 3, 40, 1, (j) => -4 * (1 + 0.01 * j)) // sign-flipped, scaled by 4
  const honest = [...Array(9).keys()]
  const krum = aggregate(updates, { rule: 'krum', f: 3 })
  assert.ok(honest.includes(krum.selected[0]!))
  const multi = aggregate(updates, { rule: 'multi-krum', f: 3 })
  assert.deepEqual(multi.selected, honest)
  // Outliers placed close to the cluster still cannot win against the centre of it.
  const sly = cluster(9, 3, 40, 1, () => 1.5)
  assert.ok(aggregate(sly, { rule: 'krum', f: 3 }).selected.every((i) => i < 9))
})

test('median, trimmed mean and Bulyan shrug off f huge outliers; FedAvg is dragged away', () => {
  const updates = cluster(9, 2, 64, 1, () => 1e6)
  const error = (rule: AggregationRule): number =>
    Math.max(...aggregate(updates, { rule, f: 2 }).result.map((x) => Math.abs(x - 1)))
  for (const rule of ['median', 'trimmed-mean', 'bulyan', 'krum', 'multi-krum'] as const)
    assert.ok(error(rule) < 0.35, `${rule} stays near the honest centre (${error(rule)})`)
  assert.ok(error('fedavg') > 1e5, `FedAvg is dragged (${error('fedavg')})`)
  // Bulyan's Krum stage may still pick an outlier late (two identical colluders score 0 once few
  // updates remain); its median stage is what drops them, and the result above stayed put.
})
