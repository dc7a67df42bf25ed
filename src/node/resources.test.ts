// The resource sampler on a manual clock and fake sources: no sleeping, every figure known.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../core/clock.ts'
import { processSources, ResourceSampler, type ResourceSources } from './resources.ts'

class FakeSources implements ResourceSources {
  cpu = 0
  rss = 100 << 20
  loop = { p99Ms: 0, maxMs: 0 }
  resets = 0
  closed = false
  cpuMicros(): number {
    return this.cpu
  }
  rssBytes(): number {
    return this.rss
  }
  eventLoop(): { p99Ms: number; maxMs: number } {
    return this.loop
  }
  resetEventLoop(): void {
    this.resets++
    this.loop = { p99Ms: 0, maxMs: 0 }
  }
  close(): void {
    this.closed = true
  }
}

const T0 = 1_700_000_000_000

test('samples every interval: CPU in cores over the interval, RSS, event-loop delay (reset each time)', () => {
  const clock = new ManualClock(T0)
  const sources = new FakeSources()
  const sampler = new ResourceSampler({ intervalMs: 5_000, windowMs: 60_000, clock, sources })
  sampler.start()
  assert.equal(sampler.resources().samples.length, 0, 'the first sample comes one interval later')

  sources.cpu += 2_500_000 // 2.5 s of CPU in 5 s: half a core
  sources.loop = { p99Ms: 12.5, maxMs: 40 }
  clock.advance(5_000)
  sources.cpu += 10_000_000 // 10 s in 5 s: two cores
  sources.rss = 150 << 20
  clock.advance(5_000)
  clock.advance(5_000) // idle

  const { samples, intervalMs, windowMs } = sampler.resources()
  assert.equal(intervalMs, 5_000)
  assert.equal(windowMs, 60_000)
  assert.deepEqual(
    samples.map((s) => [s.at - T0, s.cpu, s.rssBytes >> 20, s.eventLoopDelayMs, s.eventLoopMaxMs]),
    [
      [5_000, 0.5, 100, 12.5, 40],
      [10_000, 2, 150, 0, 0],
      [15_000, 0, 150, 0, 0],
    ],
  )
  assert.equal(sources.resets, 4, 'at start and after each sample')
  assert.deepEqual(
    sampler.resources(T0 + 5_000).samples.map((s) => s.at - T0),
    [10_000, 15_000],
    'since: only later samples',
  )
  sampler.stop()
  assert.ok(sources.closed)
  assert.equal(clock.pending, 0, 'no timer left')
  clock.advance(60_000)
  assert.equal(sampler.resources().samples.length, 3, 'stopped: no more samples')
})

test('the block interval: mean of the gaps in the interval; a stall shows as a growing interval', () => {
  const clock = new ManualClock(T0)
  const sampler = new ResourceSampler({ intervalMs: 5_000, windowMs: 60_000, clock, sources: new FakeSources() })
  assert.equal(sampler.sample().blockIntervalMs, null, 'no commit yet')
  sampler.blockCommitted(1, T0 + 100)
  clock.advance(5_000)
  assert.equal(sampler.sample().blockIntervalMs, null, 'one commit: no interval yet')
  sampler.blockCommitted(2, T0 + 6_000)
  sampler.blockCommitted(3, T0 + 7_000)
  sampler.blockCommitted(4, T0 + 9_000)
  clock.advance(5_000)
  const busy = sampler.sample()
  assert.equal(busy.blockIntervalMs, (5_900 + 1_000 + 2_000) / 3)
  assert.equal(busy.height, 4)
  clock.advance(5_000) // no commit for 6 s, longer than the last gap (2 s)
  assert.equal(sampler.sample().blockIntervalMs, 6_000)
  clock.advance(5_000)
  assert.equal(sampler.sample().blockIntervalMs, 11_000)
})

test('a ring buffer: the window keeps the newest samples, oldest first', () => {
  const clock = new ManualClock(T0)
  const sampler = new ResourceSampler({ intervalMs: 1_000, windowMs: 4_000, clock, sources: new FakeSources() })
  sampler.start()
  clock.advance(10_000)
  assert.deepEqual(
    sampler.resources().samples.map((s) => s.at - T0),
    [7_000, 8_000, 9_000, 10_000],
  )
  sampler.stop()
  assert.throws(() => new ResourceSampler({ intervalMs: 5_000, windowMs: 1_000 }), RangeError)
})

test("the process's own sources give plausible figures", () => {
  const sources = processSources()
  try {
    assert.ok(sources.cpuMicros() > 0)
    assert.ok(sources.rssBytes() > 1 << 20)
    const loop = sources.eventLoop()
    assert.ok(loop.p99Ms >= 0 && loop.maxMs >= 0)
  } finally {
    sources.close()
  }
})
