// Attacks on the wallet's delivery and mailbox protocols, as a peer sending frames to real wallet
// services over the in-process transport and chain (helpers/wallet-net.ts). Each one is refused
// with a typed error and leaves the victim's ledger, outbox and mailbox as they were.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { toHex } from '../../src/core/bytes.ts'
import { sealPayment } from '../../src/wallet/envelope.ts'
import {
  DELIVER_PROTOCOL,
  MAILBOX_PROTOCOL,
  RECEIPT_PROTOCOL,
  decodeFetchAnswer,
  decodeReceipt,
  encodeDelivery,
  encodeMailboxRequest,
  encodeReceipt,
  signReceipt,
} from '../../src/wallet/protocol.ts'
import { Mailbox, MailboxError } from '../../src/wallet/mailbox.ts'
import { systemClock } from '../../src/core/clock.ts'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../../src/identity/did-key.ts'
import { eventually, walletWorld, type WalletWorld } from '../helpers/wallet-net.ts'

/** A payment from `from` to `to` sealed and paid on chain by hand (not through a wallet). */
async function paidEnvelope(
  world: WalletWorld,
  from: WalletWorld['actors']['alice'],
  to: string,
  amount: bigint,
  onChainAmount = amount,
): Promise<{ envelope: Uint8Array; envelopeHash: Uint8Array; tx: Uint8Array }> {
  const sealed = sealPayment(from.key, { chainId: world.chain.genesis.chainId, to, amount, memo: 'hand made' })
  const { hash } = await world.submit(from, 'bank.transfer', {
    to,
    amount: onChainAmount,
    envelope: sealed.envelopeHash,
  })
  await eventually('the transfer to commit', async () => (await world.chain.txOutcome(hash)) !== undefined)
  return { envelope: sealed.envelope, envelopeHash: sealed.envelopeHash, tx: hash }
}

test('a delivery whose transaction is another payment, a lie about the amount, a forged sender or an uncommitted transfer is refused; nothing is appended', async () => {
  const world = await walletWorld()
  try {
    const { alice, bob, mallory } = world.actors
    const b = await world.open(bob, { commitWaitMs: 100 })
    await world.open(mallory)
    const attacker = world.transports.get(mallory.did)
    assert.ok(attacker !== undefined)
    const deliver = (envelope: Uint8Array, tx: Uint8Array): Promise<Uint8Array> =>
      attacker.request(bob.did, DELIVER_PROTOCOL, encodeDelivery({ envelope, tx }))

    const one = await paidEnvelope(world, alice, bob.did, 100n)
    const two = await paidEnvelope(world, alice, bob.did, 100n)
    // envelope one presented with transfer two: same parties and amount, another envelope hash
    await assert.rejects(deliver(one.envelope, two.tx), /ENVELOPE_MISMATCH|another envelope hash/)
    // the sender's envelope says 1000, the chain moved 1
    const inflated = await paidEnvelope(world, alice, bob.did, 1_000n, 1n)
    await assert.rejects(deliver(inflated.envelope, inflated.tx), /amount 1 ≠ the envelope's 1000/)
    // mallory's envelope (signed by her) presented with alice's transfer, to pass as alice's payment
    const mallorys = await paidEnvelope(world, mallory, bob.did, 100n)
    await assert.rejects(deliver(mallorys.envelope, one.tx), /sent by .* the envelope is signed by/)
    // a transfer that never committed
    await assert.rejects(deliver(one.envelope, new Uint8Array(randomBytes(32))), /not committed/)
    // an envelope sealed to someone else
    const carols = await paidEnvelope(world, alice, world.actors.carol.did, 3n)
    await assert.rejects(deliver(carols.envelope, carols.tx), /not sealed to this wallet|ENVELOPE_NOT_FOR_US/)
    assert.equal(b.ledger.count, 0, 'nothing was appended')

    // the genuine pair is accepted, once, whoever relays it, even when two copies arrive at once
    const [first, second] = await Promise.all([deliver(one.envelope, one.tx), deliver(one.envelope, one.tx)])
    assert.deepEqual(decodeReceipt(first as Uint8Array), decodeReceipt(second as Uint8Array))
    const receipt = decodeReceipt(await deliver(one.envelope, one.tx))
    assert.equal(toHex(receipt.envelope), toHex(one.envelopeHash))
    const again = decodeReceipt(await deliver(one.envelope, one.tx))
    assert.equal(again.at, receipt.at)
    assert.equal(b.ledger.count, 1, 'a replay appends nothing')
  } finally {
    await world.close()
  }
})

test('a mailbox refuses an envelope no committed transfer paid for, gives envelopes only to their recipient, and drops one only on its receipt', async () => {
  const world = await walletWorld()
  try {
    const { alice, bob, carol, mallory } = world.actors
    const c = await world.open(carol)
    await world.open(mallory)
    const attacker = world.transports.get(mallory.did)
    assert.ok(attacker !== undefined)
    const put = (to: string, envelope: Uint8Array, tx: Uint8Array): Promise<Uint8Array> =>
      attacker.request(
        carol.did,
        MAILBOX_PROTOCOL,
        encodeMailboxRequest({ op: 'put', to, envelope, tx, expires: Date.now() + 60_000 }),
      )
    const sealed = sealPayment(mallory.key, { chainId: world.chain.genesis.chainId, to: bob.did, amount: 1n })
    // no transfer at all
    await assert.rejects(put(bob.did, sealed.envelope, new Uint8Array(randomBytes(32))), /no committed bank.transfer/)
    // a committed transfer that pays someone else
    const elsewhere = await paidEnvelope(world, mallory, alice.did, 1n)
    await assert.rejects(put(bob.did, sealed.envelope, elsewhere.tx), /no committed bank.transfer/)
    // a committed transfer to bob that carries another envelope's hash
    const other = await paidEnvelope(world, mallory, bob.did, 1n)
    await assert.rejects(put(bob.did, sealed.envelope, other.tx), /no committed bank.transfer/)
    assert.equal(c.mailbox?.size, 0)

    // a paid envelope is taken
    await put(bob.did, other.envelope, other.tx)
    assert.equal(c.mailbox?.heldFor(bob.did).length, 1)
    // mallory cannot collect bob's mail: a fetch answers the asking peer's own envelopes
    const fetched = decodeFetchAnswer(
      await attacker.request(carol.did, MAILBOX_PROTOCOL, encodeMailboxRequest({ op: 'fetch' })),
    )
    assert.equal(fetched.length, 0)
    // nor remove it with a receipt she signed
    const fake = signReceipt(mallory.key, { envelope: other.envelopeHash, id: new Uint8Array(16), at: Date.now() })
    await assert.rejects(
      attacker.request(carol.did, MAILBOX_PROTOCOL, encodeMailboxRequest({ op: 'ack', receipt: fake })),
      /not signed by/,
    )
    assert.equal(c.mailbox?.heldFor(bob.did).length, 1)
    // bob collects it when his wallet starts, and his receipt removes it
    const b = await world.open(bob)
    await eventually('bob to collect', () => b.ledger.count === 1)
    await eventually('carol to drop it', () => c.mailbox?.heldFor(bob.did).length === 0)
  } finally {
    await world.close()
  }
})

test('a receipt not signed by the recipient does not acknowledge a payment', async () => {
  const world = await walletWorld()
  try {
    const { alice, bob, mallory } = world.actors
    world.hub.setUp(bob.did, false)
    const a = await world.open(alice)
    await world.open(mallory)
    const sent = await a.send({ to: bob.did, amount: 4n })
    await eventually('the transfer to commit', () => a.payment(sent.id)?.status === 'committed')
    const attacker = world.transports.get(mallory.did)
    assert.ok(attacker !== undefined)
    const item = a.outbox()[0]
    assert.ok(item !== undefined)
    const forged = signReceipt(mallory.key, {
      envelope: Buffer.from(item.hash, 'hex'),
      id: Buffer.from(item.id, 'hex'),
      at: Date.now(),
    })
    await assert.rejects(attacker.request(alice.did, RECEIPT_PROTOCOL, encodeReceipt(forged)), /not .*signature/)
    // the same receipt relabelled with bob's DID: the signature does not verify
    await assert.rejects(
      attacker.request(alice.did, RECEIPT_PROTOCOL, encodeReceipt({ ...forged, to: bob.did })),
      /not .*signature/,
    )
    assert.equal(a.payment(sent.id)?.receipt, undefined)
    assert.equal(a.outbox().length, 1)
  } finally {
    await world.close()
  }
})

test('malformed frames are refused as the peer’s fault, and a flood of requests is cut at the per-peer limit', async () => {
  const world = await walletWorld()
  try {
    const { bob, mallory } = world.actors
    await world.open(bob)
    await world.open(mallory)
    const attacker = world.transports.get(mallory.did)
    assert.ok(attacker !== undefined)
    for (const junk of [new Uint8Array(0), Uint8Array.of(0xff), new TextEncoder().encode('{"envelope":1}')])
      await assert.rejects(attacker.request(bob.did, DELIVER_PROTOCOL, junk), /not canonical dag-cbor|not a map/)
    await assert.rejects(
      attacker.request(bob.did, MAILBOX_PROTOCOL, encodeMailboxRequest({ op: 'receipts', envelopes: [] }).subarray(1)),
    )
    let busy = 0
    for (let i = 0; i < 70; i++)
      await attacker.request(bob.did, MAILBOX_PROTOCOL, encodeMailboxRequest({ op: 'fetch' })).catch((err: Error) => {
        if (/too many wallet requests/.test(err.message)) busy += 1
      })
    assert.ok(busy >= 5, `${busy} requests refused as too many`)
  } finally {
    await world.close()
  }
})

test('a mailbox holds at most its limits per recipient and per sending peer, and forgets expired envelopes', async () => {
  let now = 1_000_000
  const clock = { ...systemClock, now: () => now }
  // the transfer check is the service's (tested above); here every put is paid for
  const mailbox = new Mailbox({ clock, verifyTransfer: async () => true, limits: { perRecipient: 2, perPeer: 3 } })
  const sender = Ed25519KeyPair.generate()
  const [r0, r1] = [0, 1].map(() => didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)) as [string, string]
  const envelopeFor = (recipient: string): Uint8Array =>
    sealPayment(sender, { chainId: 'c', to: recipient, amount: 1n }).envelope
  const tx = new Uint8Array(32)
  await mailbox.put('peer-a', { to: r0, envelope: envelopeFor(r0), tx, expires: now + 1_000 })
  await mailbox.put('peer-a', { to: r0, envelope: envelopeFor(r0), tx, expires: now + 1_000 })
  await assert.rejects(
    mailbox.put('peer-b', { to: r0, envelope: envelopeFor(r0), tx, expires: now + 1_000 }),
    /envelopes for .* already/,
  )
  await mailbox.put('peer-a', { to: r1, envelope: envelopeFor(r1), tx, expires: now + 1_000 })
  await assert.rejects(
    mailbox.put('peer-a', { to: r1, envelope: envelopeFor(r1), tx, expires: now + 1_000 }),
    /from you already/,
  )
  await assert.rejects(mailbox.put('peer-c', { to: r1, envelope: envelopeFor(r1), tx, expires: now - 1 }), MailboxError)
  assert.equal(mailbox.size, 3)
  now += 1_001
  assert.equal(mailbox.fetch(r0, 10).length, 0)
  assert.equal(mailbox.size, 0)
})
