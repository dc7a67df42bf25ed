// Calibration returns sane numbers; no assertions on how fast this machine is.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { InvalidInputError } from '../../core/errors.ts'
import { createLogger } from '../../core/logger.ts'
import { assessPohRate, calibrateHashesPerTick, checkSustainable, measureHashRate } from './calibrate.ts'

test('measureHashRate returns a positive, finite rate', () => {
  const rate = measureHashRate({ durationMs: 30 })
  assert.ok(Number.isFinite(rate) && rate > 0, String(rate))
  assert.throws(() => measureHashRate({ durationMs: 0 }), InvalidInputError)
})

test('calibrateHashesPerTick spends dutyCycle of the measured rate on ticks', () => {
  assert.equal(calibrateHashesPerTick({ ticksPerSecond: 160, dutyCycle: 1, hashRate: 2_000_000 }), 12_500)
  assert.equal(calibrateHashesPerTick({ ticksPerSecond: 10, dutyCycle: 0.5, hashRate: 1_000_001 }), 50_000)
  assert.equal(calibrateHashesPerTick({ ticksPerSecond: 1000, hashRate: 10 }), 1, 'never below one hash')
  const measured = calibrateHashesPerTick({ ticksPerSecond: 100, durationMs: 30 })
  assert.ok(Number.isSafeInteger(measured) && measured >= 1)
  assert.throws(() => calibrateHashesPerTick({ ticksPerSecond: 0, hashRate: 1 }), InvalidInputError)
  assert.throws(() => calibrateHashesPerTick({ ticksPerSecond: 1, dutyCycle: 1.5, hashRate: 1 }), InvalidInputError)
})

test('checkSustainable compares the chain rate with the measured rate', () => {
  assert.deepEqual(checkSustainable({ hashesPerTick: 12_500, ticksPerSecond: 160 }, 4_000_000), {
    sustainable: true,
    utilization: 0.5,
  })
  assert.deepEqual(checkSustainable({ hashesPerTick: 12_500, ticksPerSecond: 160 }, 1_000_000), {
    sustainable: false,
    utilization: 2,
  })
  assert.equal(checkSustainable({ hashesPerTick: 1, ticksPerSecond: 1 }, 0).sustainable, false)
  assert.equal(
    checkSustainable({ hashesPerTick: 95, ticksPerSecond: 1 }, 100, { maxUtilization: 0.9 }).sustainable,
    false,
  )
})

test('assessPohRate warns when this machine cannot keep the rate', () => {
  const lines: Array<Record<string, unknown>> = []
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>)
      done()
    },
  })
  const logger = createLogger({ destination })
  const slow = assessPohRate({ hashesPerTick: 1e9, ticksPerSecond: 1000 }, { logger, durationMs: 20 })
  assert.equal(slow.sustainable, false)
  assert.ok(slow.hashRate > 0)
  const easy = assessPohRate({ hashesPerTick: 1, ticksPerSecond: 1 }, { logger, durationMs: 20 })
  assert.equal(easy.sustainable, true)
  assert.deepEqual(
    lines.map((l) => [l.level, l.component]),
    [
      [40, 'donghae:chain:poh'],
      [30, 'donghae:chain:poh'],
    ],
  )
})
