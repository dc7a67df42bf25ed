/**
 * What the operator routes need from the node: its account and a way to sign with its key.
 * The node (src/node/chain-node.ts) implements it over `DonghaeNode.submitOwnTx`.
 */

export interface OperatorTransfer {
  to: string
  amount: bigint
  memo?: Uint8Array
  /** @default the chain's minimum fee */
  fee?: bigint
}

export interface OperatorApi {
  /** The node's own account (its DID). */
  did: string
  /** Signs a bank transfer with the node's key and admits it to the mempool; throws TxError with a reason. */
  transfer(request: OperatorTransfer): Promise<{ hash: Uint8Array; nonce: bigint }>
}
