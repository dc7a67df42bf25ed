// The wallet service over a real in-process chain and transport (helpers/wallet-net.ts): a payment
// with memo and invoice delivered and acknowledged; an offline recipient that gets it through a
// peer's mailbox after both sides restart; a transfer that fails on chain; reconciliation of a
// payment whose transfer never commits.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { balanceOf } from '../src/bank/bank.ts'
import { txHash } from '../src/chain/tx.ts'
import { InsufficientFundsError } from '../src/wallet/service.ts'
import { eventually, walletWorld } from './helpers/wallet-net.ts'

test('a payment with a memo and an invoice: committed, delivered, decrypted by the recipient, acknowledged; both ledgers verify', async () => {
  const world = await walletWorld()
  try {
    const { alice, bob } = world.actors
    const a = await world.open(alice)
    const b = await world.open(bob)
    const invoice = { name: 'invoice-7.txt', bytes: new TextEncoder().encode('INVOICE 7: 250 for dinner') }
    const sent = await a.send({ to: bob.did, amount: 250n, memo: '냉면, Friday', invoice })
    // the test chain commits every 10 ms and send() writes its outbox after submitting, so the
    // commit can be recorded before send() returns; a failed one never can
    assert.ok(sent.status === 'pending' || sent.status === 'committed', sent.status)
    assert.equal(sent.direction, 'sent')
    await eventually('the receipt', () => a.payment(sent.id)?.receipt !== undefined)
    const mine = a.payment(sent.id)
    assert.equal(mine?.status, 'committed')
    assert.ok(mine?.height !== undefined && mine.txHash !== undefined)
    const theirs = b.payment(sent.id)
    assert.equal(theirs?.direction, 'received')
    assert.equal(theirs?.memo, '냉면, Friday')
    assert.equal(theirs?.amount, 250n)
    assert.deepEqual(theirs?.invoice?.bytes, invoice.bytes)
    assert.equal(theirs?.txHash, mine.txHash)
    assert.equal(balanceOf(world.chain.state, bob.did), 250n)
    assert.equal(a.outbox().length, 0)
    // sent: payment, status, receipt; received: payment
    assert.deepEqual(await a.verifyLedger().then((r) => r.count), 3)
    assert.deepEqual(await b.verifyLedger().then((r) => r.count), 1)
  } finally {
    await world.close()
  }
})

test('an offline recipient: the envelope waits in a peer’s mailbox across restarts of both sides, then arrives and is acknowledged', async () => {
  const world = await walletWorld()
  try {
    const { alice, bob, carol } = world.actors
    let a = await world.open(alice)
    let b = await world.open(bob)
    const c = await world.open(carol)
    b.stop()
    world.hub.setUp(bob.did, false)
    const sent = await a.send({ to: bob.did, amount: 77n, memo: 'while you were away' })
    await eventually('the envelope left with carol', () => a.outbox()[0]?.storedWith.includes(carol.did) === true)
    assert.equal(c.mailbox?.heldFor(bob.did).length, 1)
    const held = c.mailbox?.heldFor(bob.did)[0]
    assert.ok(held !== undefined)
    assert.equal(Buffer.from(held.envelope).includes(Buffer.from('while you were away')), false)
    // the sender restarts: its outbox is on disk
    a.stop()
    a = await world.open(alice)
    assert.equal(a.outbox().length, 1)
    assert.equal(a.payment(sent.id)?.status, 'committed')
    // the recipient comes back (its wallet reopened from its files) and collects from carol's mailbox
    world.hub.setUp(bob.did, true)
    b = await world.open(bob)
    await eventually('bob to hold the payment', () => b.payment(sent.id)?.memo === 'while you were away')
    await eventually('alice to get the receipt', () => a.payment(sent.id)?.receipt !== undefined)
    await eventually('carol to drop the envelope', () => c.mailbox?.heldFor(bob.did).length === 0)
    assert.equal(a.outbox().length, 0)
  } finally {
    await world.close()
  }
})

test('a direct delivery after the recipient comes back, with no mailbox on the way', async () => {
  const world = await walletWorld()
  try {
    const { alice, bob } = world.actors
    const a = await world.open(alice)
    const b = await world.open(bob)
    world.hub.setUp(bob.did, false)
    const sent = await a.send({ to: bob.did, amount: 5n, memo: 'retry me' })
    await eventually('a failed attempt', () => (a.outbox()[0]?.attempts ?? 0) >= 2)
    assert.match(a.outbox()[0]?.lastError ?? '', /unreachable/)
    world.hub.setUp(bob.did, true)
    await eventually('the receipt after a retry', () => a.payment(sent.id)?.receipt !== undefined)
    assert.equal(b.payment(sent.id)?.memo, 'retry me')
  } finally {
    await world.close()
  }
})

test('a payment the balance cannot cover is refused before anything is written', async () => {
  const world = await walletWorld()
  try {
    const { carol, bob } = world.actors
    const c = await world.open(carol)
    await world.open(bob)
    await assert.rejects(c.send({ to: bob.did, amount: 1_000_000n }), InsufficientFundsError)
    assert.equal(c.ledger.count, 0)
    // a payment it can cover goes through
    const paid = await c.send({ to: bob.did, amount: 6_000n, memo: 'within budget' })
    await eventually('the payment to commit', () => c.payment(paid.id)?.status === 'committed')
    assert.equal(c.ledger.count >= 2, true)
  } finally {
    await world.close()
  }
})

test('a payment whose transfer never commits is failed after the pending timeout', async () => {
  const world = await walletWorld()
  try {
    const { alice, bob } = world.actors
    // submit goes nowhere: the transfer is never in the mempool
    const a = await world.open(alice, { pendingTimeoutMs: 200, retryInitialMs: 20 })
    await world.open(bob)
    const original = world.chain.submitTx.bind(world.chain)
    world.chain.submitTx = async (bytes) => ({ hash: txHash(bytes) })
    const sent = await a.send({ to: bob.did, amount: 9n })
    world.chain.submitTx = original
    await eventually('the payment to fail', () => a.payment(sent.id)?.status === 'failed', 5_000)
    assert.equal(a.payment(sent.id)?.failure, 'not-committed')
    assert.equal(a.outbox().length, 0)
  } finally {
    await world.close()
  }
})
