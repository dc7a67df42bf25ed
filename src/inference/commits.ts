/** Waiting for the chain to move on after submitting a transaction. */
import type { ChainEvent } from '../chain/host.ts'
import type { InferenceComponents } from './components.ts'
import { COMMIT_WAIT_MS } from './constants.ts'

/**
 * Resolves after `n` commits, or after COMMIT_WAIT_MS without a commit, or when the component
 * stops. The time bound matters: a chain without empty blocks makes no further block once the
 * transaction waited for is in one, so "the next commit" may be a minute away (the empty-block
 * interval).
 */
export function nextCommits(c: Pick<InferenceComponents, 'chain' | 'signal' | 'clock'>, n: number): Promise<void> {
  return sentAndCommitted(
    c,
    () => Promise.resolve(),
    () => false,
    n,
  )
}

/**
 * Sends a transaction (`send`) and resolves at the first commit with an event that `wanted`
 * accepts (the transaction is in), or after `most` commits without one, or after COMMIT_WAIT_MS
 * without any commit, or when the component stops; rejects as `send` does. The commits are
 * watched from before the transaction is sent, so one that includes it at once is not missed. A
 * fixed number of commits is not enough: blocks can follow each other faster than a transaction
 * reaches the next proposer (a height begins once every precommit is in).
 */
export function sentAndCommitted(
  c: Pick<InferenceComponents, 'chain' | 'signal' | 'clock'>,
  send: () => Promise<unknown>,
  wanted: (event: ChainEvent) => boolean,
  most: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let left = most
    let cancel = (): void => {}
    const stop = (): void => {
      off()
      cancel()
      c.signal.removeEventListener('abort', done)
    }
    const done = (): void => {
      stop()
      resolve()
    }
    const wait = (): void => {
      cancel()
      cancel = c.clock.setTimer(COMMIT_WAIT_MS, done)
    }
    const off = c.chain.onCommit((_height, events) => {
      if (events.some(wanted) || --left <= 0) done()
      else wait()
    })
    wait()
    c.signal.addEventListener('abort', done, { once: true })
    send().catch((err: unknown) => {
      stop()
      reject(err)
    })
  })
}
