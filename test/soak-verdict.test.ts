// The soak run's verdict (bench/soak.ts `judge`) on synthetic samples: flat memory and latency
// pass with the fitted slopes reported; a node whose RSS climbs 60 MB/h over an hour fails as a
// leak; RSS noise in a short run does not; a p99 that doubles over the second half fails as a
// drift; a sample without a block fails as a stall.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { judge, linearFit, type SoakSample } from '../bench/soak.ts'
import { createRng, testSeed } from './helpers/random.ts'

interface Shape {
  minutes: number
  rss(minute: number, node: number): number
  /** Mapped-file pages; anonymous memory is the rest of rss. */
  file?(minute: number, node: number): number
  p99(minute: number): number
  blocks?(minute: number): number
}

function samples(shape: Shape): SoakSample[] {
  return Array.from({ length: shape.minutes }, (_, i) => {
    const minute = i + 1
    const blocks = shape.blocks?.(minute) ?? 60
    return {
      at: new Date(minute * 60_000).toISOString(),
      minute,
      nodes: [0, 1].map((n) => ({
        node: `node${n}`,
        rssMb: shape.rss(minute, n),
        treeRssMb: null,
        heapUsedMb: null,
        heapTotalMb: null,
        anonMb: shape.file === undefined ? null : shape.rss(minute, n) - shape.file(minute, n),
        fileMb: shape.file === undefined ? null : shape.file(minute, n),
        externalMb: null,
        cpu: 0.1,
        eventLoopP99Ms: 5,
        eventLoopMaxMs: 20,
        height: minute * 60,
      })),
      blocks,
      blockTimeS: blocks === 0 ? null : 60 / blocks,
      latency: {
        infer: { n: 30, failed: 0, p50: 20, p99: shape.p99(minute) },
        tx: { n: 30, failed: 0, p50: 900, p99: 1_500 },
      },
      load: { sent: 120, ok: 120, failed: 0 },
    }
  })
}

test('linearFit recovers a line', () => {
  const fit = linearFit([
    [0, 1],
    [1, 3],
    [2, 5],
    [3, 7],
  ])
  assert.deepEqual(fit, { intercept: 1, slope: 2 })
  assert.equal(linearFit([[0, 1]]), undefined)
})

test('an hour of flat memory and latency passes, slopes reported', (t) => {
  const rng = createRng(testSeed())
  t.diagnostic(`seed ${rng.seed}`)
  const verdict = judge(
    samples({ minutes: 60, rss: (_, n) => 250 + n * 30 + rng.int(-8, 8), p99: () => 400 + rng.int(-50, 50) }),
    60,
  )
  assert.deepEqual(verdict.failures, [])
  assert.equal(verdict.pass, true)
  for (const r of verdict.rss) assert.ok(Math.abs(r.slopeMbPerHour as number) < 20, `${r.node}: ${r.slopeMbPerHour}`)
  assert.ok(verdict.rss[1]?.meanMb !== null && Math.abs((verdict.rss[1]?.meanMb as number) - 280) < 5)
})

test('60 MB/h of RSS on one node over an hour is a leak; the same noise over 4 minutes is not', () => {
  const leaking = judge(samples({ minutes: 60, rss: (m, n) => 250 + (n === 1 ? m : 0), p99: () => 400 }), 60)
  assert.equal(leaking.pass, false)
  assert.equal(leaking.failures.length, 1)
  assert.match(leaking.failures[0] as string, /^node1 leaks: RSS \+60\.0 MB\/h/)
  // the split says where it came from: here mapped files, 0.5 MB a minute, and the heaps 0.5
  const split = judge(
    samples({
      minutes: 60,
      rss: (m, n) => 250 + (n === 1 ? m : 0),
      file: (m, n) => 80 + (n === 1 ? m / 2 : 0),
      p99: () => 400,
    }),
    60,
  ).rssSplit
  assert.deepEqual(split[1], {
    node: 'node1',
    anon: { slopeMbPerHour: 30, riseMb: 15 },
    file: { slopeMbPerHour: 30, riseMb: 15 },
  })
  assert.deepEqual(split[0]?.file, { slopeMbPerHour: 0, riseMb: 0 })
  assert.deepEqual(leaking.rssSplit[0], {
    node: 'node0',
    anon: { slopeMbPerHour: null, riseMb: null },
    file: { slopeMbPerHour: null, riseMb: null },
  })
  // a short run: a steep fitted slope from allocator noise, but a rise under the noise floor
  const short = judge(samples({ minutes: 4, rss: (m) => 250 + (m >= 3 ? 8 : 0), p99: () => 400 }), 4)
  assert.ok((short.rss[0]?.slopeMbPerHour as number) > 20)
  assert.equal(short.pass, true, short.failures.join('; '))
})

test('a p99 that doubles over the second half drifts; a chain without blocks in a sample stalls', () => {
  const drifting = judge(
    samples({ minutes: 60, rss: () => 250, p99: (m) => (m <= 30 ? 400 : 400 + (m - 30) * 14) }),
    60,
  )
  assert.equal(drifting.pass, false)
  assert.match(drifting.failures.join(';'), /infer p99 drifts/)
  const stalled = judge(samples({ minutes: 10, rss: () => 250, p99: () => 400, blocks: (m) => (m === 7 ? 0 : 60) }), 10)
  assert.deepEqual(stalled.failures, ['the chain made no block in the sample ending at minute 7.0'])
})
