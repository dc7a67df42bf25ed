/**
 * Chain values as the API's JSON: bigint -> decimal string, bytes -> lowercase hex. The shapes are
 * the response schemas in schemas.ts.
 */
import { equals, toHex } from '../core/bytes.ts'
import type { Block, BlockHeader } from '../chain/block.ts'
import type { CommitCertificate } from '../chain/bft/types.ts'
import { decodeTx, txHash } from '../chain/tx.ts'
import type { AccountView, NodeStatus } from './chain-api.ts'
import type { AccountJson, BlockJson, LightBlockJson, StatusJson, TxJsonView } from './schemas.ts'

/**
 * A decoded dag-cbor value (a transaction body) made JSON-safe, recursively: bytes -> hex, and
 * every integer -> decimal string. dag-cbor integers are 64-bit and decode as a JS number when
 * small, so a generic view cannot tell an amount from a count; all integers as strings keeps
 * amounts exact and the rule simple.
 */
export function jsonSafe(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (typeof value === 'number' && Number.isInteger(value)) return String(value)
  if (value instanceof Uint8Array) return toHex(value)
  if (Array.isArray(value)) return value.map(jsonSafe)
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v)]))
  }
  return value
}

export function statusJson(status: NodeStatus): StatusJson {
  return {
    chainId: status.chainId,
    did: status.did,
    moniker: status.moniker,
    height: status.height,
    latestBlockId: toHex(status.latestBlockId),
    latestBlockTime: status.latestBlockTime,
    stateRoot: toHex(status.stateRoot),
    consensus: { ...status.consensus },
    validators: status.validators.map((v) => ({ did: v.did, power: v.power.toString() })),
    mempool: { ...status.mempool },
    peers: status.peers,
  }
}

export function accountJson(account: AccountView): AccountJson {
  const { stake } = account
  return {
    did: account.did,
    balance: account.balance.toString(),
    nonce: account.nonce.toString(),
    stake:
      stake === null
        ? null
        : {
            bonded: stake.bonded.toString(),
            jailed: stake.jailed,
            jailedUntil: stake.jailedUntil,
            tombstoned: stake.tombstoned,
            unbonding: stake.unbonding.map((u) => ({ amount: u.amount.toString(), completes: u.completes })),
          },
  }
}

/** A committed transaction as JSON (the envelope's shape was checked when it entered a block). */
export function txJson(bytes: Uint8Array): TxJsonView {
  const tx = decodeTx(bytes)
  return {
    hash: toHex(txHash(bytes)),
    sender: tx.sender,
    nonce: tx.nonce.toString(),
    fee: tx.fee.toString(),
    kind: tx.kind,
    body: jsonSafe(tx.body),
  }
}

export function commitSummary(cert: CommitCertificate | null | undefined): BlockJson['commit'] {
  if (cert === null || cert === undefined) return null
  const signers = cert.precommits
    .filter((v) => v.blockId !== null && equals(v.blockId, cert.blockId))
    .map((v) => v.validator)
  return {
    height: cert.height,
    round: cert.round,
    blockId: toHex(cert.blockId),
    precommits: cert.precommits.length,
    signers,
  }
}

export function headerJson(h: BlockHeader): BlockJson['header'] {
  return {
    chainId: h.chainId,
    height: h.height,
    round: h.round,
    time: h.time,
    proposer: h.proposer,
    parentId: toHex(h.parentId),
    txRoot: toHex(h.txRoot),
    stateRoot: toHex(h.stateRoot),
    pohStart: toHex(h.pohStart),
    pohEnd: toHex(h.pohEnd),
    pohTicks: h.pohTicks,
    lastCommitHash: toHex(h.lastCommitHash),
  }
}

/** A header and the whole certificate that decided it (GET /v1/chain/headers/:height). */
export function lightBlockJson(found: { block: Block; id: Uint8Array; commit: CommitCertificate }): LightBlockJson {
  const { commit } = found
  return {
    height: found.block.header.height,
    blockId: toHex(found.id),
    header: headerJson(found.block.header),
    commit: {
      height: commit.height,
      round: commit.round,
      blockId: toHex(commit.blockId),
      precommits: commit.precommits.map((v) => ({
        chainId: v.chainId,
        height: v.height,
        round: v.round,
        type: v.type,
        blockId: v.blockId === null ? null : toHex(v.blockId),
        validator: v.validator,
        signature: toHex(v.signature),
      })),
    },
  }
}

export function blockJson(found: { block: Block; id: Uint8Array; commit: CommitCertificate | undefined }): BlockJson {
  const { block } = found
  const h = block.header
  return {
    hash: toHex(found.id),
    height: h.height,
    header: headerJson(h),
    txs: block.txs.map(txJson),
    poh: { entries: block.poh.length, ticks: h.pohTicks },
    lastCommit: commitSummary(block.lastCommit),
    commit: commitSummary(found.commit),
  }
}
