/**
 * The node's single queue for the transactions it signs with its own key: settlements, audits,
 * deposits, serving declarations, double-sign evidence, operator transfers. Callers are served
 * one at a time and nonces follow on from the ones still pending, so concurrent callers never
 * collide; with nothing pending the next nonce comes from committed state, so a transaction that
 * was dropped leaves no gap behind. Every component submits through this one queue (two code
 * paths signing with one key would race for nonces).
 */
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import { accountNonce } from '../chain/host.ts'
import type { StateReader } from '../chain/state-view.ts'
import { encodeTx, signTx } from '../chain/tx.ts'

export interface OwnTxQueueInit {
  key: Ed25519KeyPair
  chainId: string
  /** The fee paid when the caller names none (the chain's minimum). */
  fee: bigint
  /** Committed state (for the next nonce). */
  state(): StateReader
  /** Transactions from `did` waiting in the mempool. */
  pendingFrom(did: string): number
  /** Admits to the mempool and gossips; rejects with the reason (TxError). */
  submit(bytes: Uint8Array): Promise<Uint8Array>
}

export class OwnTxQueue {
  readonly did: string
  readonly #init: OwnTxQueueInit
  #next = 0n
  #tail: Promise<unknown> = Promise.resolve()

  constructor(init: OwnTxQueueInit) {
    this.#init = init
    this.did = didFromEd25519PublicKey(init.key.publicKey)
  }

  /** Signs `kind`/`body` with the node key at the next nonce and submits it. */
  submit(kind: string, body: unknown, fee?: bigint): Promise<{ hash: Uint8Array; nonce: bigint }> {
    const run = async (): Promise<{ hash: Uint8Array; nonce: bigint }> => {
      const init = this.#init
      const fromState = accountNonce(init.state(), this.did)
      const pending = init.pendingFrom(this.did) > 0
      const nonce = pending && this.#next > fromState ? this.#next : fromState
      const tx = signTx(init.key, { chainId: init.chainId, nonce, fee: fee ?? init.fee, kind, body })
      const hash = await init.submit(encodeTx(tx))
      this.#next = nonce + 1n
      return { hash, nonce }
    }
    const result = this.#tail.then(run, run)
    this.#tail = result.catch(() => undefined)
    return result
  }
}
