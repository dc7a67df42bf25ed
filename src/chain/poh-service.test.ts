// WorkerPohService on a real generator thread and verifier pool: while a height waits for work the
// generator makes no tick (pause), a block still gets the tick it needs, and resume ticks again
// from the head's PoH end.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { WorkerPohService } from './poh-service.ts'
import { PohGenerator } from './poh/generator.ts'
import { PohVerifier } from './poh/verifier.ts'
import { verifyPohEntries } from './poh/entries.ts'

const HPT = 64

async function withService(fn: (poh: WorkerPohService, generator: PohGenerator) => Promise<void>): Promise<void> {
  const generator = new PohGenerator({ hashesPerTick: HPT, ticksPerSecond: 1000, maxTicks: 1_000 })
  const verifier = new PohVerifier({ workers: 1 })
  generator.start()
  verifier.start()
  try {
    await fn(new WorkerPohService(generator, verifier), generator)
  } finally {
    await generator.stop()
    await verifier.stop()
  }
}

test('paused, the generator makes no tick; a block still gets its tick; resumed, it ticks from the head again', async () => {
  await withService(async (poh, generator) => {
    const head = new Uint8Array(32).fill(0x42)
    poh.follow(head)
    await generator.waitForTicks(3)
    poh.pause()
    // at 1000 ticks a second a generator that went on would make ~150 meanwhile
    await sleep(150)
    await generator.ready()
    assert.deepEqual(await generator.drain(), [], 'no tick while the height waits')
    const block = await poh.produce(head, 1, [new Uint8Array(32).fill(7)])
    assert.equal(block.filter((e) => e.mixin === undefined).length, 1, 'one tick, made on demand')
    assert.equal((await poh.verify(head, block, HPT)).ok, true)
    assert.equal(verifyPohEntries(head, block, HPT).ok, true)
    poh.resume()
    await generator.waitForTicks(5)
    const ticks = await generator.drain()
    assert.ok(ticks.length >= 5)
    assert.equal(verifyPohEntries(head, ticks, HPT).ok, true, 'resumed ticks start at the head PoH end')
  })
})

test('a commit during a pause starts ticking from the new head (follow wins over the pause)', async () => {
  await withService(async (poh, generator) => {
    poh.follow(new Uint8Array(32).fill(1))
    poh.pause()
    const next = new Uint8Array(32).fill(2)
    poh.follow(next)
    await generator.waitForTicks(3)
    const block = await poh.produce(next, 3, [])
    assert.equal(verifyPohEntries(next, block, HPT).ok, true)
  })
})
