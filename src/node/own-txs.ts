/**
 * The node's single queue for the transactions it signs with its own key: settlements, audits,
 * deposits, serving declarations, double-sign evidence, operator transfers. Callers are served
 * one at a time and nonces follow on from the ones still pending, so concurrent callers never
 * collide; with nothing pending the next nonce comes from committed state. Every component
 * submits through this one queue (two code paths signing with one key would race for nonces).
 *
 * Gaps heal: a transaction the chain will never include (refused while a block was built, so
 * dropped from the mempool) would leave every later nonce waiting forever. After each commit the
 * queue looks at the oldest transaction it is still waiting for; if its nonce is the account's
 * next and the mempool no longer holds it, it is given up and the ones after it are signed again
 * from that nonce (their old copies are taken out of the mempool first). The same check runs on a
 * timer (`OWN_TX_HEAL_MS`, chain-node.ts): a chain without empty blocks makes no commit while nothing it could run is
 * pending. And when the mempool refuses a new one as too far ahead (transactions this queue waits
 * for were dropped behind the ones it holds: found by `donghae chaos`, where every later
 * settlement and transfer of the node was refused and the idle chain stopped), the waiting ones
 * are signed again from the account's next nonce at once, and the new one after them.
 */
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import { accountNonce } from '../chain/host.ts'
import type { StateReader } from '../chain/state-view.ts'
import { encodeTx, signTx } from '../chain/tx.ts'
import { TxError } from '../chain/errors.ts'

export interface OwnTxQueueInit {
  key: Ed25519KeyPair
  chainId: string
  /** The fee paid when the caller names none (the chain's minimum). */
  fee: bigint
  /** Committed state (for the next nonce). */
  state(): StateReader
  /** Transactions from `did` waiting in the mempool. */
  pendingFrom(did: string): number
  /** Whether the mempool still holds this transaction, and a way to take one out. */
  inMempool(hash: Uint8Array): boolean
  dropFromMempool(hash: Uint8Array): void
  /** Admits to the mempool and gossips; rejects with the reason (TxError). */
  submit(bytes: Uint8Array): Promise<Uint8Array>
  /** Told when a transaction is given up (it will never be included). */
  onAbandoned?(kind: string, nonce: bigint): void
}

interface Unconfirmed {
  nonce: bigint
  kind: string
  body: unknown
  fee: bigint
  hash: Uint8Array
}

export class OwnTxQueue {
  readonly did: string
  readonly #init: OwnTxQueueInit
  #next = 0n
  #tail: Promise<unknown> = Promise.resolve()
  #unconfirmed: Unconfirmed[] = []

  constructor(init: OwnTxQueueInit) {
    this.#init = init
    this.did = didFromEd25519PublicKey(init.key.publicKey)
  }

  /** Transactions signed and not yet seen committed. */
  get waiting(): number {
    return this.#unconfirmed.length
  }

  /** Signs `kind`/`body` with the node key at the next nonce and submits it. */
  submit(kind: string, body: unknown, fee?: bigint): Promise<{ hash: Uint8Array; nonce: bigint }> {
    return this.#serial(async () => {
      const init = this.#init
      const fromState = accountNonce(init.state(), this.did)
      const pending = init.pendingFrom(this.did) > 0
      let nonce = pending && this.#next > fromState ? this.#next : fromState
      let hash: Uint8Array
      try {
        hash = await this.#send({ nonce, kind, body, fee: fee ?? init.fee })
      } catch (err) {
        if (!(err instanceof TxError) || err.reason !== 'nonce-too-far') throw err
        // the nonces this queue waits for left the mempool: sign them again from the account's next
        nonce = await this.#resign(fromState)
        hash = await this.#send({ nonce, kind, body, fee: fee ?? init.fee })
      }
      this.#next = nonce + 1n
      return { hash, nonce }
    })
  }

  /** After each commit: forget what was included, heal a gap left by a dropped transaction. */
  committed(): Promise<void> {
    return this.#serial(async () => {
      const init = this.#init
      const next = accountNonce(init.state(), this.did)
      this.#unconfirmed = this.#unconfirmed.filter((u) => u.nonce >= next)
      const first = this.#unconfirmed[0]
      if (first === undefined || first.nonce !== next || init.inMempool(first.hash)) return
      init.onAbandoned?.(first.kind, first.nonce)
      this.#unconfirmed = this.#unconfirmed.slice(1)
      await this.#resign(next)
    })
  }

  /**
   * Takes every transaction still waiting out of the mempool and signs them again from `next`,
   * in order (one the mempool refuses now is given up); returns the nonce after the last.
   */
  async #resign(next: bigint): Promise<bigint> {
    const init = this.#init
    const waiting = this.#unconfirmed.filter((u) => u.nonce >= next)
    this.#unconfirmed = []
    for (const u of waiting) init.dropFromMempool(u.hash)
    let nonce = next
    for (const u of waiting) {
      try {
        await this.#send({ ...u, nonce })
        nonce++
      } catch {
        init.onAbandoned?.(u.kind, u.nonce)
      }
    }
    this.#next = nonce
    return nonce
  }

  async #send(u: Omit<Unconfirmed, 'hash'>): Promise<Uint8Array> {
    const init = this.#init
    const bytes = encodeTx(
      signTx(init.key, { chainId: init.chainId, nonce: u.nonce, fee: u.fee, kind: u.kind, body: u.body }),
    )
    const hash = await init.submit(bytes)
    this.#unconfirmed.push({ ...u, hash })
    return hash
  }

  #serial<T>(run: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(run, run)
    this.#tail = result.catch(() => undefined)
    return result
  }
}
