// Attacks on the batched transaction topic (src/chain/tx-batch.ts, ChainRuntime's #onTxBatch). A
// gossip message carries up to 256 transactions, so one message must not buy an attacker more
// than 256 messages of one transaction each did:
// - a batch of wrongly signed transactions from funded accounts (each passes the cheap checks and
//   reaches the signature check) costs the receiver one slice of signature checks, and its sender
//   a penalty for each bad one, enough to be cut off at once;
// - a batch that carries one valid transaction many times (every copy would reach the signature
//   check before the first is pooled) is refused before any of it is admitted, and penalized;
// - a batch that is not a batch (random bytes, a bare transaction) is refused and penalized.
// Honest batches are checked in test/tx-batches.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encode } from '../../src/core/codec.ts'
import { encodeTx, signTx, txHash } from '../../src/chain/tx.ts'
import { TX_ADMIT_SLICE, TX_TOPIC } from '../../src/chain/runtime.ts'
import { encodeTxBatch, MAX_TX_BATCH } from '../../src/chain/tx-batch.ts'
import type { DonghaeNode } from '../../src/node/index.ts'
import { actor, makeGenesis, type Actor } from '../helpers/chain.ts'
import { FAST_PARAMS, testNet, waitFor, type TestNet } from '../helpers/chain-net.ts'
import type { MemoryTransport } from '../../src/net/memory-transport.ts'

function transfer(from: Actor, chainId: string, nonce: bigint, tamper = false): Uint8Array {
  const signed = signTx(from.key, {
    chainId,
    nonce,
    fee: 1n,
    kind: 'bank.transfer',
    body: { to: actor().did, amount: 1n },
  })
  // a fee changed after signing: well formed and payable, but the signature does not verify
  return encodeTx(tamper ? { ...signed, fee: 2n } : signed)
}

/** A transfer whose signature is flipped in one bit: well formed, payable, at fee 1, and invalid. */
function badlySigned(from: Actor, chainId: string, nonce: bigint): Uint8Array {
  const signed = signTx(from.key, {
    chainId,
    nonce,
    fee: 1n,
    kind: 'bank.transfer',
    body: { to: actor().did, amount: 1n },
  })
  const signature = Uint8Array.from(signed.signature)
  signature[0] = (signature[0] as number) ^ 1
  return encodeTx({ ...signed, signature })
}

/** The first validator as the victim, and an attacker peer on the hub with the penalties it got from it. */
function attack(
  net: TestNet,
  validators: Actor[],
): { victim: DonghaeNode; attacker: MemoryTransport; penalties(): number } {
  const victimDid = (validators[0] as Actor).did
  return {
    victim: net.nodes.get(victimDid) as DonghaeNode,
    attacker: net.hub.join('attacker'),
    penalties: () => net.hub.penalties.filter((p) => p.by === victimDid && p.peer === 'attacker').length,
  }
}

test('attack: a batch of 256 wrongly signed transactions costs one slice of signature checks and cuts its sender off', async () => {
  const validators = [actor(), actor(), actor(), actor()]
  const senders = Array.from({ length: MAX_TX_BATCH }, () => actor())
  const genesis = makeGenesis(
    validators,
    [...validators, ...senders].map((a): [Actor, bigint] => [a, 1_000_000n]),
    FAST_PARAMS,
  )
  const net = await testNet(validators, genesis)
  try {
    const { victim, attacker, penalties } = attack(net, validators)
    const before = victim.runtime.stats.rejectedTxs
    attacker.publish(TX_TOPIC, encodeTxBatch(senders.map((s) => transfer(s, genesis.chainId, 0n, true))))
    await waitFor('the batch to be judged', () => penalties() > 0)
    await new Promise((resolve) => setTimeout(resolve, 200)) // anything still checking would show
    assert.equal(victim.runtime.stats.rejectedTxs - before, TX_ADMIT_SLICE, 'only the first slice was checked')
    assert.equal(penalties(), TX_ADMIT_SLICE, 'a penalty for each bad signature checked')
    assert.equal(victim.mempool.size, 0)
  } finally {
    await net.close()
  }
})

test('attack: a batch carrying one valid transaction 256 times is refused unread and penalized; the transaction alone is taken', async () => {
  const validators = [actor(), actor(), actor(), actor()]
  const net = await testNet(validators)
  try {
    const { victim, attacker, penalties } = attack(net, validators)
    const tx = transfer(validators[1] as Actor, net.genesis.chainId, 0n)
    const before = victim.runtime.stats.rejectedTxs
    attacker.publish(TX_TOPIC, encode(Array.from({ length: MAX_TX_BATCH }, () => tx)))
    attacker.publish(TX_TOPIC, encode([tx, tx]))
    await waitFor('both batches penalized', () => penalties() === 2)
    assert.equal(victim.runtime.stats.rejectedTxs - before, 2, 'each refused as one malformed message')
    assert.equal(victim.mempool.size, 0, 'no copy was admitted')
    // The same transaction once, from an honest peer, is admitted and committed.
    net.hub.join('honest').publish(TX_TOPIC, encodeTxBatch([tx]))
    await waitFor('the transaction to commit', async () => (await victim.app.txHeight(txHash(tx))) !== undefined)
    assert.ok(net.hub.penalties.every((p) => p.peer !== 'honest'))
  } finally {
    await net.close()
  }
})

test('attack: random bytes and a bare transaction on the batch topic are refused and penalized', async () => {
  const validators = [actor(), actor(), actor(), actor()]
  const net = await testNet(validators)
  try {
    const { victim, attacker, penalties } = attack(net, validators)
    attacker.publish(TX_TOPIC, crypto.getRandomValues(new Uint8Array(200)))
    attacker.publish(TX_TOPIC, transfer(validators[1] as Actor, net.genesis.chainId, 0n))
    await waitFor('both penalized', () => penalties() === 2)
    assert.equal(victim.mempool.size, 0)
  } finally {
    await net.close()
  }
})

test('a full pool refuses relayed transactions before their signatures, and does not cut off the honest peer that relays them', async () => {
  // A node that fell a block behind under full load stays full while its peers relay what they
  // made room for: charged whole, those refusals spent the peers' ignore budgets and the node
  // banned them all (found by the chain-devnet bench). Now they cost a hundredth each, and are
  // decided before the signature, so even bad signatures among them cost no check.
  const POOL = 10_000 // the node's default mempool bound
  const PER_SENDER = 64 // the node's default per-sender bound
  const validators = [actor(), actor(), actor(), actor()]
  const fillers = Array.from({ length: Math.ceil(POOL / PER_SENDER) }, () => actor())
  const relayed = Array.from({ length: 16 }, () => actor())
  const genesis = makeGenesis(
    validators,
    [...validators, ...fillers, ...relayed].map((a): [Actor, bigint] => [a, 1_000_000n]),
    FAST_PARAMS,
  )
  const net = await testNet(validators, genesis)
  try {
    // one validator alone: no quorum, no blocks, its pool stays full
    for (const v of validators.slice(1)) await net.stop(v)
    const victimDid = (validators[0] as Actor).did
    const node = net.nodes.get(victimDid) as DonghaeNode
    const fill: Uint8Array[] = []
    for (const s of fillers)
      for (let n = 0n; n < BigInt(PER_SENDER) && fill.length < POOL; n++) fill.push(transfer(s, genesis.chainId, n))
    await Promise.all(fill.map((bytes) => node.runtime.submitTx(bytes)))
    assert.equal(node.mempool.size, POOL)

    // 1 024 payable transactions at the lowest fee pending, in 4 full batches; half wrongly signed
    const txs = relayed.flatMap((s, i) =>
      Array.from({ length: PER_SENDER }, (_, n) =>
        (i + n) % 2 === 0 ? badlySigned(s, genesis.chainId, BigInt(n)) : transfer(s, genesis.chainId, BigInt(n)),
      ),
    )
    const before = { rejected: node.runtime.stats.rejectedTxs, flooded: node.runtime.stats.floodedTxs }
    const peer = net.hub.join('honest-peer')
    for (let i = 0; i < txs.length; i += MAX_TX_BATCH)
      peer.publish(TX_TOPIC, encodeTxBatch(txs.slice(i, i + MAX_TX_BATCH)))
    await waitFor(
      'every relayed transaction judged',
      () => node.runtime.stats.rejectedTxs - before.rejected === txs.length,
    )
    assert.equal(node.runtime.stats.floodedTxs, before.flooded, 'no batch was refused unread')
    assert.deepEqual(
      net.hub.penalties.filter((p) => p.peer === 'honest-peer'),
      [],
      'the peer was not penalized (a bad signature would have been, had it been checked)',
    )
    assert.equal(node.mempool.size, POOL)
  } finally {
    await net.close()
  }
})
