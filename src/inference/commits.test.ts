import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../core/clock.ts'
import type { ChainEvent } from '../chain/host.ts'
import { sentAndCommitted } from './commits.ts'
import { COMMIT_WAIT_MS } from './constants.ts'
import type { InferenceComponents } from './components.ts'

/** A committed chain that commits when told to, with the events given (the rest of ChainView unused). */
function chain(): {
  c: Pick<InferenceComponents, 'chain' | 'signal' | 'clock'>
  commit(events?: ChainEvent[]): void
  clock: ManualClock
  listeners: () => number
} {
  const listeners = new Set<(height: number, events: readonly ChainEvent[]) => void>()
  const clock = new ManualClock(0)
  let height = 0
  const view = {
    onCommit(listener: (height: number, events: readonly ChainEvent[]) => void) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  } as unknown as InferenceComponents['chain']
  return {
    c: { chain: view, clock, signal: new AbortController().signal },
    commit: (events = []) => {
      height++
      for (const l of [...listeners]) l(height, events)
    },
    clock,
    listeners: () => listeners.size,
  }
}

const deposit: ChainEvent = { type: 'inference.deposit', attributes: { client: 'me', gateway: 'me' } }
const isDeposit = (e: ChainEvent): boolean => e.type === 'inference.deposit' && e.attributes.client === 'me'

/** Whether `promise` has settled after the pending microtasks ran. */
async function settled(promise: Promise<void>): Promise<boolean> {
  let done = false
  void promise.then(() => (done = true))
  await new Promise((r) => setImmediate(r))
  return done
}

test('sentAndCommitted waits past commits without the transaction for the one that carries it', async () => {
  const { c, commit, listeners } = chain()
  const waiting = sentAndCommitted(c, async () => ({}), isDeposit, 10)
  commit()
  commit([{ type: 'bank.transfer', attributes: {} }])
  commit()
  assert.equal(await settled(waiting), false, 'three blocks came faster than the deposit: still waiting')
  commit([deposit])
  assert.equal(await settled(waiting), true)
  assert.equal(listeners(), 0, 'no listener left behind')
})

test('sentAndCommitted gives up after `most` commits without it, or after COMMIT_WAIT_MS without a commit', async () => {
  const a = chain()
  const bounded = sentAndCommitted(a.c, async () => ({}), isDeposit, 3)
  a.commit()
  a.commit()
  assert.equal(await settled(bounded), false)
  a.commit()
  assert.equal(await settled(bounded), true, 'three commits, none with it')

  const b = chain()
  const quiet = sentAndCommitted(b.c, async () => ({}), isDeposit, 10)
  b.clock.advance(COMMIT_WAIT_MS - 1)
  b.commit() // a commit restarts the wait
  b.clock.advance(COMMIT_WAIT_MS - 1)
  assert.equal(await settled(quiet), false)
  b.clock.advance(1)
  assert.equal(await settled(quiet), true, 'a chain without empty blocks may make no further block')
})

test('sentAndCommitted sees a commit that includes the transaction before `send` has resolved', async () => {
  const { c, commit, listeners } = chain()
  // a chain that commits the transaction as it is sent (the simulation's, or a fast block)
  const waiting = sentAndCommitted(c, async () => commit([deposit]), isDeposit, 10)
  assert.equal(await settled(waiting), true)
  assert.equal(listeners(), 0)
})

test('sentAndCommitted rejects as the submission does, and stops watching', async () => {
  const { c, listeners } = chain()
  await assert.rejects(
    sentAndCommitted(c, async () => Promise.reject(new Error('mempool full')), isDeposit, 10),
    /mempool full/,
  )
  assert.equal(listeners(), 0)
})
