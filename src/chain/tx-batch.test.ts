import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../core/clock.ts'
import { encode } from '../core/codec.ts'
import { DecodeError } from '../core/errors.ts'
import { MAX_TX_BYTES } from './tx.ts'
import { decodeTxBatch, encodeTxBatch, MAX_TX_BATCH, MAX_TX_BATCH_BYTES, TX_BATCH_MS, TxBatcher } from './tx-batch.ts'

const tx = (n: number, size = 100): Uint8Array => {
  const bytes = new Uint8Array(size).fill(n % 256)
  new DataView(bytes.buffer).setUint32(0, n)
  return bytes
}

test('decodeTxBatch reads back what encodeTxBatch wrote', () => {
  const txs = [tx(1), tx(2, 300), tx(3, 4)]
  assert.deepEqual(decodeTxBatch(encodeTxBatch(txs)), txs)
  const full = Array.from({ length: MAX_TX_BATCH }, (_, n) => tx(n))
  assert.equal(decodeTxBatch(encodeTxBatch(full)).length, MAX_TX_BATCH)
})

test('decodeTxBatch refuses anything but 1 to MAX_TX_BATCH distinct byte strings within the limits', () => {
  const refused: Array<[string, Uint8Array]> = [
    ['empty list', encode([])],
    ['too many', encode(Array.from({ length: MAX_TX_BATCH + 1 }, (_, n) => tx(n)))],
    ['not a list', encode({ txs: [tx(1)] })],
    ['a string in the list', encode([tx(1), 'tx'])],
    ['an empty transaction', encode([new Uint8Array(0)])],
    ['a transaction over MAX_TX_BYTES', encode([new Uint8Array(MAX_TX_BYTES + 1)])],
    ['more bytes than a batch may carry', encode(Array.from({ length: 17 }, (_, n) => tx(n, MAX_TX_BYTES)))],
    ['one transaction twice', encode([tx(1), tx(2), tx(1)])],
    ['not dag-cbor', new Uint8Array([0xff, 0x00, 0x01])],
    ['trailing bytes', new Uint8Array([...encode([tx(1)]), 0])],
  ]
  for (const [what, bytes] of refused) assert.throws(() => decodeTxBatch(bytes), DecodeError, what)
  assert.ok(17 * MAX_TX_BYTES > MAX_TX_BATCH_BYTES, 'the byte case is over the limit')
})

test('encodeTxBatch refuses an empty or oversized batch', () => {
  assert.throws(() => encodeTxBatch([]), RangeError)
  assert.throws(() => encodeTxBatch(Array.from({ length: MAX_TX_BATCH + 1 }, (_, n) => tx(n))), RangeError)
})

function batcher(): { clock: ManualClock; sent: Uint8Array[][]; b: TxBatcher } {
  const clock = new ManualClock(0)
  const sent: Uint8Array[][] = []
  const b = new TxBatcher({ clock, publish: (batch) => sent.push(decodeTxBatch(batch)) })
  return { clock, sent, b }
}

test('TxBatcher: transactions added together go out in one message, TX_BATCH_MS after the first', () => {
  const { clock, sent, b } = batcher()
  b.add(tx(1))
  clock.advance(TX_BATCH_MS - 1)
  b.add(tx(2))
  b.add(tx(3))
  assert.equal(sent.length, 0, 'nothing before the wait is over')
  assert.equal(b.pending, 3)
  clock.advance(1)
  assert.deepEqual(sent, [[tx(1), tx(2), tx(3)]])
  assert.equal(b.pending, 0)
  b.add(tx(4))
  clock.advance(TX_BATCH_MS)
  assert.deepEqual(sent[1], [tx(4)], 'the next one starts its own wait')
  assert.deepEqual(b.stats, { batches: 2, txs: 4 })
})

test('TxBatcher: a full batch goes out at once; bytes past the limit start the next one', () => {
  const { clock, sent, b } = batcher()
  for (let n = 0; n < MAX_TX_BATCH + 1; n++) b.add(tx(n))
  assert.equal(sent.length, 1, 'the full batch left without waiting')
  assert.equal(sent[0]?.length, MAX_TX_BATCH)
  clock.advance(TX_BATCH_MS)
  assert.equal(sent[1]?.length, 1)
  const perBatch = MAX_TX_BATCH_BYTES / MAX_TX_BYTES // 16 of the largest transactions fill a batch
  for (let n = 0; n <= perBatch; n++) b.add(tx(1000 + n, MAX_TX_BYTES))
  assert.equal(sent.length, 3, 'the last large transaction did not fit with the others')
  assert.equal(sent[2]?.length, perBatch)
  clock.advance(TX_BATCH_MS)
  assert.equal(sent[3]?.length, 1)
})

test('TxBatcher: a transaction already queued is not queued again; stop drops what waits', () => {
  const { clock, sent, b } = batcher()
  b.add(tx(1))
  b.add(Uint8Array.from(tx(1)))
  clock.advance(TX_BATCH_MS)
  assert.deepEqual(sent, [[tx(1)]])
  b.add(tx(1))
  clock.advance(TX_BATCH_MS)
  assert.deepEqual(sent[1], [tx(1)], 'once sent, it may be sent again (re-gossip)')
  b.add(tx(2))
  b.stop()
  clock.advance(TX_BATCH_MS * 10)
  assert.equal(sent.length, 2)
  assert.equal(b.pending, 0)
})
