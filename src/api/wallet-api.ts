/**
 * What the wallet routes (routes/wallet.ts; issue 14, seed 002) need from a node: payments sent
 * with their details sealed to the recipient, the local ledger read back decrypted, deliveries in
 * flight. The node implements it over its WalletService (src/wallet/service.ts).
 *
 * Every route is an operator route (bearer token): a wallet's history is private, and sending
 * spends the node's own account. JSON; amounts are decimal strings (bigint base units); hashes
 * and ids are lowercase hex; errors are `{ error: { code, message } }`.
 *
 *     GET  /v1/operator/wallet                          -> 200 WalletSummary
 *     GET  /v1/operator/wallet/payments?limit&cursor&direction=sent|received
 *                                                       -> 200 { payments: WalletPaymentView[], cursor? } (newest first)
 *     GET  /v1/operator/wallet/payments/:id             -> 200 WalletPaymentView | 404
 *     GET  /v1/operator/wallet/payments/:id/invoice     -> 200 the invoice's bytes (attachment) | 404
 *     POST /v1/operator/wallet/send   body: WalletSendBody
 *                                                       -> 202 WalletPaymentView (status 'pending')
 *     GET  /v1/operator/wallet/deliveries               -> 200 { deliveries: DeliveryView[] }
 *     POST /v1/operator/wallet/verify                   -> 200 LedgerVerification | 409 (tampered: code LEDGER_TAMPERED, details.index)
 *
 * Errors of send: 400 (bad DID, amount, memo or invoice), 402 INSUFFICIENT_FUNDS (balance below
 * amount + fee), 503 WALLET_LOCKED (the node runs without a wallet ledger).
 */

/** A payment as the wallet shows it: the ledger's entry merged with its later status entries. */
export interface WalletPaymentView {
  /** The payment's id (hex, 16 bytes), the same on both sides. */
  id: string
  direction: 'sent' | 'received'
  /** The other party's DID. */
  counterparty: string
  from: string
  to: string
  /** Base units, decimal. */
  amount: string
  /** The decrypted memo ('' when none). */
  memo: string
  /** The attached invoice, when there is one (its bytes: GET .../payments/:id/invoice). */
  invoice?: { name: string; bytes: number }
  /** When the sender made it (ms since the epoch, the sender's clock). */
  createdAt: number
  /** sha256 of the sealed envelope (hex): what the transfer carries on chain. */
  envelopeHash: string
  /** The transfer's transaction hash, once known. */
  txHash?: string
  /**
   * Reconciled against the chain: `pending` until the transfer commits, `committed` when it did
   * (and its body succeeded), `failed` when it failed or never committed in time.
   */
  status: 'pending' | 'committed' | 'failed'
  height?: number
  /** Why a payment failed (the chain's reason, or 'not-committed'). */
  failure?: string
  /**
   * Sent payments: `queued` (the envelope waits for the recipient; `attempts` so far),
   * `stored` (left with a mailbox peer, waiting there), `acknowledged` (the recipient's signed
   * receipt came back). Received payments: always `acknowledged`.
   */
  delivery: 'queued' | 'stored' | 'acknowledged'
  /** The recipient's signed receipt (sent payments, once acknowledged). */
  receipt?: { at: number; signature: string }
  /** Index of the payment's entry in the ledger. */
  ledgerIndex: number
}

export interface WalletSummary {
  did: string
  /** Committed balance, base units. */
  balance: string
  /** Sent payments not yet committed: how many and their total. */
  pending: { count: number; amount: string }
  /** Envelopes waiting for their recipient's receipt. */
  deliveriesPending: number
  ledger: { entries: number; head: string }
  /** The chain's minimum fee (the default of send). */
  fee: string
}

export interface WalletSendBody {
  /** The recipient's DID (did:key). */
  to: string
  /** Base units, decimal string. */
  amount: string
  memo?: string
  /** An invoice file to attach, base64. */
  invoice?: { name: string; base64: string }
  /** Base units; default the chain's minimum fee. */
  fee?: string
}

export interface DeliveryView {
  /** The payment's id (hex). */
  id: string
  to: string
  envelopeHash: string
  attempts: number
  /** When the next direct attempt is due (ms since the epoch). */
  nextAttemptAt: number
  /** Peers (DIDs) holding a copy for the recipient. */
  storedWith: string[]
  lastError?: string
  /** When the envelope stops being offered (ms since the epoch). */
  expiresAt: number
}

export interface LedgerVerification {
  ok: true
  entries: number
  head: string
}

export interface WalletHistoryQuery {
  limit?: number
  cursor?: string
  direction?: 'sent' | 'received'
}

export interface WalletSendRequest {
  to: string
  amount: bigint
  memo?: string
  invoice?: { name: string; bytes: Uint8Array }
  fee?: bigint
}

export interface WalletApi {
  summary(): WalletSummary
  history(query: WalletHistoryQuery): { payments: WalletPaymentView[]; cursor?: string }
  payment(id: string): WalletPaymentView | undefined
  invoice(id: string): { name: string; bytes: Uint8Array } | undefined
  /** Seals, signs and submits; resolves once the transfer is in the mempool. */
  send(request: WalletSendRequest): Promise<WalletPaymentView>
  deliveries(): DeliveryView[]
  /** Re-reads the ledger files and checks every entry (LedgerTamperedError names the first bad index). */
  verify(): Promise<LedgerVerification>
}
