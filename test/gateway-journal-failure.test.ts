// A gateway whose journal refuses the receipt (its database's disk is full) does not answer with
// it: it answers InferenceError `not-recorded` (HTTP 503), since a receipt it cannot keep would be
// lost when the node stops on the failed write, and the client would hold a receipt nobody
// settles (found by the chaos runs: docs/chaos.md). The same job through a journal that works is
// answered. Real gateway, settler and worker components on the simulated network
// (test/helpers/sim-market.ts), real ONNX Runtime.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { InferenceError } from '../src/inference/errors.ts'
import { memoryJournal, type Journal } from '../src/inference/settler.ts'
import { SimMarket } from './helpers/sim-market.ts'

/** A journal on a full disk: every write fails the way the store's does. */
function fullDiskJournal(): Journal & { refused: number } {
  const inner = memoryJournal()
  const journal = {
    refused: 0,
    put: async (): Promise<void> => {
      journal.refused++
      throw new Error('cannot write to bucket inference-journal: IO error: No space left on device')
    },
    delete: (key: string) => inner.delete(key),
    list: () => inner.list(),
  }
  return journal
}

test('a receipt the gateway cannot journal is not handed out: not-recorded (503), and a working journal answers', async () => {
  const full = fullDiskJournal()
  const failing = await SimMarket.open({ seed: 41, gatewayJournals: { settlements: full } })
  const gateway = failing.gateways[0]!
  await assert.rejects(
    gateway.inference.gateway.infer({ model: failing.model.cid, inputs: failing.inputs(0) }),
    (err: unknown) => {
      assert.ok(err instanceof InferenceError, `typed: ${String(err)}`)
      assert.equal(err.reason, 'not-recorded')
      assert.equal(err.status, 503)
      assert.match(err.message, /could not record the receipt.*No space left on device/)
      return true
    },
  )
  assert.ok(full.refused >= 1, 'the journal was asked')

  const working = await SimMarket.open({ seed: 41, gatewayJournals: { settlements: memoryJournal() } })
  const answer = await working.gateways[0]!.inference.gateway.infer({
    model: working.model.cid,
    inputs: working.inputs(0),
  })
  assert.ok(answer.receipt.fee > 0n, 'answered with a receipt')
})

test('a reservation the gateway cannot journal: the job is refused before it is sent (not-recorded), nothing stays reserved', async () => {
  const full = fullDiskJournal()
  const market = await SimMarket.open({ seed: 43, gatewayJournals: { reservations: full } })
  const gateway = market.gateways[0]!.inference.gateway
  const client = market.gateways[0]!.did
  await assert.rejects(gateway.infer({ model: market.model.cid, inputs: market.inputs(0) }), (err: unknown) => {
    assert.ok(err instanceof InferenceError, `typed: ${String(err)}`)
    assert.equal(err.reason, 'not-recorded')
    assert.equal(err.status, 503)
    assert.match(err.message, /could not record the job's reservation.*No space left on device.*nothing was sent/)
    return true
  })
  assert.ok(full.refused >= 1, 'the journal was asked')
  await market.blocks(3)
  assert.equal(
    market.workers.reduce((n, w) => n + (w.inference.worker?.kept ?? 0), 0),
    0,
    'no worker ran the job (none keeps a receipt)',
  )
  assert.equal(gateway.reservedFor(client), 0n, 'the reservation was released')
  assert.equal(gateway.stats.jobs, 0)
})
