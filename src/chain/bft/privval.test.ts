import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sha256 } from '../../core/hash.ts'
import { utf8 } from '../../core/bytes.ts'
import { Store } from '../../store/store.ts'
import { DoubleSignError } from './errors.ts'
import { verifyProposal, verifyVote } from './messages.ts'
import {
  LevelSignStateStore,
  MemorySignStateStore,
  PrivValidator,
  type SignState,
  type SignStateStore,
} from './privval.ts'
import { testValidators } from './testing.ts'
import type { UnsignedVote } from './types.ts'

const { keys, dids } = testValidators([1n, 1n])
const X = sha256(utf8('x'))
const Y = sha256(utf8('y'))

function vote(over: Partial<UnsignedVote> = {}): UnsignedVote {
  return { chainId: 'c', height: 3, round: 1, type: 'prevote', blockId: X, validator: dids[0]!, ...over }
}

test('signs, and re-signing the identical value returns the identical signature', async () => {
  const privval = new PrivValidator(keys[0]!, new MemorySignStateStore())
  const a = await privval.signVote(vote())
  assert.ok(verifyVote(a, keys[0]!.publicKey))
  const b = await privval.signVote(vote())
  assert.deepEqual(b.signature, a.signature)
})

test('refuses a different value for a signed (height, round, type) and anything at an earlier step', async () => {
  const privval = new PrivValidator(keys[0]!, new MemorySignStateStore())
  await privval.signVote(vote())
  await assert.rejects(privval.signVote(vote({ blockId: Y })), DoubleSignError)
  await assert.rejects(privval.signVote(vote({ blockId: null })), DoubleSignError)
  await privval.signVote(vote({ type: 'precommit', blockId: null }))
  await assert.rejects(privval.signVote(vote()), DoubleSignError, 'prevote after precommit in the same round')
  await assert.rejects(privval.signVote(vote({ round: 0, type: 'precommit' })), DoubleSignError, 'earlier round')
  await assert.rejects(privval.signVote(vote({ height: 2, round: 9 })), DoubleSignError, 'earlier height')
  await assert.rejects(
    privval.signProposal({ chainId: 'c', height: 3, round: 1, blockId: X, validRound: -1, proposer: dids[0]! }),
    DoubleSignError,
    'proposal after votes in the same round',
  )
  const p = await privval.signProposal({
    chainId: 'c',
    height: 3,
    round: 2,
    blockId: Y,
    validRound: -1,
    proposer: dids[0]!,
  })
  assert.ok(verifyProposal(p, keys[0]!.publicKey))
  await privval.signVote(vote({ round: 2, blockId: Y }))
  await assert.rejects(privval.signVote(vote({ validator: dids[1]!, round: 5 })), DoubleSignError, 'another key')
})

test('concurrent requests are serialized: two conflicting votes never both get signed', async () => {
  const privval = new PrivValidator(keys[0]!, new MemorySignStateStore())
  const results = await Promise.allSettled([privval.signVote(vote()), privval.signVote(vote({ blockId: Y }))])
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'rejected'],
  )
})

test('the sign state is persisted before a signature is returned', async () => {
  let fail = true
  const inner = new MemorySignStateStore()
  const flaky: SignStateStore = {
    load: () => inner.load(),
    save: async (state: SignState) => {
      if (fail) throw new Error('disk full')
      await inner.save(state)
    },
  }
  const privval = new PrivValidator(keys[0]!, flaky)
  await assert.rejects(privval.signVote(vote()), /disk full/)
  assert.equal(await inner.load(), undefined, 'nothing signed, nothing returned')
  fail = false
  const signed = await privval.signVote(vote({ blockId: Y }))
  const state = await inner.load()
  assert.equal(state?.height, 3)
  assert.equal(state?.round, 1)
  assert.equal(state?.step, 2)
  assert.deepEqual(state?.signature, signed.signature)
})

test('a restarted private validator (new instance, same store) still refuses to double sign and keeps its lock', async () => {
  const store = new MemorySignStateStore()
  const before = new PrivValidator(keys[0]!, store)
  await before.signVote(vote({ type: 'prevote' }))
  const precommit = await before.signVote(vote({ type: 'precommit' }))
  const after = new PrivValidator(keys[0]!, store)
  await assert.rejects(after.signVote(vote({ type: 'precommit', blockId: null })), DoubleSignError)
  assert.deepEqual((await after.signVote(vote({ type: 'precommit' }))).signature, precommit.signature)
  assert.deepEqual(await after.lockAt(3), { height: 3, round: 1, blockId: X })
  assert.equal(await after.lockAt(4), undefined)
  const votes = await after.votesAt(3)
  assert.deepEqual(
    votes.map((v) => [v.type, v.round]),
    [
      ['prevote', 1],
      ['precommit', 1],
    ],
  )
  for (const v of votes) assert.ok(verifyVote(v, keys[0]!.publicKey))
  await after.signVote(vote({ height: 4, round: 0 }))
  assert.equal((await after.votesAt(3)).length, 0, 'the record is per height')
})

test('LevelSignStateStore survives closing and reopening the database', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-privval-'))
  try {
    const store = await Store.open(join(dir, 'db'))
    const privval = new PrivValidator(keys[0]!, new LevelSignStateStore(store))
    const polka = [await privval.signVote(vote())]
    const block = utf8('the locked block')
    await privval.signVote(vote({ type: 'precommit' }), { block, polka })
    await privval.signVote(vote({ round: 2, blockId: null }))
    await store.close()
    const reopened = await Store.open(join(dir, 'db'))
    const restarted = new PrivValidator(keys[0]!, new LevelSignStateStore(reopened))
    await assert.rejects(restarted.signVote(vote({ round: 2, blockId: Y })), DoubleSignError)
    await assert.rejects(restarted.signVote(vote({ type: 'precommit', blockId: Y })), DoubleSignError)
    assert.deepEqual(await restarted.lockAt(3), { height: 3, round: 1, blockId: X, block, polka })
    assert.equal((await restarted.votesAt(3)).length, 3)
    await reopened.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
