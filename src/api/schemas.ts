/**
 * JSON Schemas of the HTTP API (TypeBox builds them; Fastify validates requests and serializes
 * responses with them; @fastify/swagger publishes them). Money, nonces and voting power are
 * 64-bit: on the wire they are always decimal strings, never JSON numbers. Bytes are lowercase hex.
 */
import Type from './schema-builder.ts'
import { MAX_TX_BYTES } from '../chain/tx.ts'
import { MAX_TX_BATCH } from '../chain/tx-batch.ts'
import { MAX_PROOF_KEY_BYTES } from './constants.ts'
import { EVENT_TYPES } from './events.ts'

const Hex = (description: string) => Type.String({ pattern: '^([0-9a-f]{2})*$', description })
const Hash = (description: string) => Type.String({ pattern: '^[0-9a-f]{64}$', description })
const Amount = (description: string) => Type.String({ pattern: '^(0|[1-9][0-9]*)$', description })
const Height = (description: string) => Type.Integer({ minimum: 0, description })

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'stable error code, e.g. TX_REJECTED, NOT_FOUND, BAD_REQUEST' }),
      message: Type.String({ description: 'what went wrong, for people' }),
      reason: Type.Optional(
        Type.String({ description: 'machine-readable detail: the transaction or did:key error name' }),
      ),
      type: Type.Optional(
        Type.String({
          description:
            "OpenAI-compatible routes only: OpenAI's error type (invalid_request_error, authentication_error, server_error...)",
        }),
      ),
      param: Type.Optional(
        Type.Union([Type.String(), Type.Null()], {
          description: 'OpenAI-compatible routes only: the parameter at fault, e.g. temperature or messages[1].content',
        }),
      ),
    }),
  },
  { description: 'every error answer has this shape' },
)

/** Error answers every route may give. */
export const ERROR_RESPONSES = { '4xx': ErrorBody, '5xx': ErrorBody } as const

// ---- status ----------------------------------------------------------------------------------

export const StatusResponse = Type.Object({
  chainId: Type.String(),
  did: Type.String({ description: "this node's DID" }),
  moniker: Type.String(),
  height: Height('latest committed height (0 before the first block)'),
  latestBlockId: Hex('id of the latest committed block (the genesis hash at height 0)'),
  latestBlockTime: Type.Integer({ description: 'milliseconds since the Unix epoch' }),
  stateRoot: Hex('state root after the latest block'),
  consensus: Type.Object({
    height: Height('height being decided'),
    round: Type.Integer({ minimum: 0 }),
    step: Type.String(),
    idle: Type.Boolean({
      description: 'waiting for work before round 0: no transaction or due module work (no empty blocks)',
    }),
  }),
  validators: Type.Array(Type.Object({ did: Type.String(), power: Amount('voting power (bonded stake)') })),
  mempool: Type.Object({ size: Type.Integer({ minimum: 0 }), bytes: Type.Integer({ minimum: 0 }) }),
  peers: Type.Integer({ minimum: 0 }),
})

// ---- blocks ----------------------------------------------------------------------------------

export const HeightParams = Type.Object({ height: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }) })

const BlockHeaderJson = Type.Object({
  chainId: Type.String(),
  height: Height('block height'),
  round: Type.Integer({ minimum: 0 }),
  time: Type.Integer({ description: 'milliseconds since the Unix epoch' }),
  proposer: Type.String(),
  parentId: Hex('id of the parent block'),
  txRoot: Hex('Merkle root of the transaction hashes'),
  stateRoot: Hex('state root after this block'),
  pohStart: Hex('PoH hash the segment starts from'),
  pohEnd: Hex('PoH hash the segment ends at'),
  pohTicks: Type.Integer({ minimum: 0 }),
  lastCommitHash: Hex("hash of the previous height's commit certificate"),
})

export const TxJson = Type.Object({
  hash: Hash('sha256 of the encoded transaction'),
  sender: Type.String(),
  nonce: Amount('sender nonce'),
  fee: Amount('fee, base units'),
  kind: Type.String({ description: 'module.action, e.g. bank.transfer' }),
  body: Type.Unknown({ description: 'the body as JSON: every integer as a decimal string, bytes as hex' }),
})

const CommitSummary = Type.Union([
  Type.Object({
    height: Height('certified height'),
    round: Type.Integer({ minimum: 0 }),
    blockId: Hex('certified block id'),
    precommits: Type.Integer({ minimum: 0, description: 'precommits in the certificate' }),
    signers: Type.Array(Type.String(), { description: 'validators whose precommit is for the block' }),
  }),
  Type.Null(),
])

const VoteJson = Type.Object({
  chainId: Type.String(),
  height: Height('height voted on'),
  round: Type.Integer({ minimum: 0 }),
  type: Type.Union([Type.Literal('precommit'), Type.Literal('prevote')]),
  blockId: Type.Union([Hex('the block voted for'), Type.Null()], { description: 'null: a nil vote' }),
  validator: Type.String({ description: "the voter's did:key" }),
  signature: Hex('Ed25519 signature of the vote (kind chain.vote)'),
})

export const LightBlockResponse = Type.Object(
  {
    height: Height('block height'),
    blockId: Hex('sha256 of the dag-cbor header (recompute it: never trust this field)'),
    header: BlockHeaderJson,
    commit: Type.Object(
      {
        height: Height('certified height'),
        round: Type.Integer({ minimum: 0 }),
        blockId: Hex('the certified block id'),
        precommits: Type.Array(VoteJson),
      },
      { description: 'the commit certificate of this block: precommits of more than 2/3 of its validator set' },
    ),
  },
  { description: 'what a light client checks: a header and the full commit certificate that decided it' },
)

export const BlockResponse = Type.Object({
  hash: Hex('block id: sha256 of the dag-cbor header'),
  height: Height('block height'),
  header: BlockHeaderJson,
  txs: Type.Array(TxJson),
  poh: Type.Object({ entries: Type.Integer({ minimum: 0 }), ticks: Type.Integer({ minimum: 0 }) }),
  lastCommit: CommitSummary,
  commit: CommitSummary,
})

// ---- accounts --------------------------------------------------------------------------------

export const DidParams = Type.Object({ did: Type.String({ minLength: 1, maxLength: 256, description: 'a did:key' }) })

export const AccountResponse = Type.Object({
  did: Type.String(),
  balance: Amount('spendable balance, base units'),
  nonce: Amount("the nonce of the account's next transaction"),
  stake: Type.Union([
    Type.Object({
      bonded: Amount('bonded stake, base units'),
      jailed: Type.Boolean(),
      jailedUntil: Type.Integer({
        minimum: 0,
        description: 'height from which staking.unjail is allowed; 0 when not jailed',
      }),
      tombstoned: Type.Boolean(),
      unbonding: Type.Array(
        Type.Object({ amount: Amount('base units'), completes: Height('withdrawable from this height') }),
      ),
    }),
    Type.Null(),
  ]),
})

// ---- transactions ----------------------------------------------------------------------------

export const SubmitTxBody = Type.Object(
  {
    tx: Type.String({
      minLength: 2,
      maxLength: 2 * MAX_TX_BYTES + 2,
      description: 'the encoded signed transaction (dag-cbor), as hex (optionally 0x-prefixed) or base64',
    }),
  },
  { additionalProperties: false },
)

export const SubmitTxResponse = Type.Object({ hash: Hash('transaction hash: poll GET /v1/tx/{hash} for its height') })

/** Most transactions in one POST /v1/txs (as many as one gossip message carries). */
export const MAX_SUBMIT_TXS = MAX_TX_BATCH

export const SubmitTxsBody = Type.Object(
  {
    txs: Type.Array(SubmitTxBody.properties.tx, {
      minItems: 1,
      maxItems: MAX_SUBMIT_TXS,
      description: `1 to ${MAX_SUBMIT_TXS} encoded signed transactions, each as in POST /v1/tx; each is judged on its own`,
    }),
  },
  { additionalProperties: false },
)

export const SubmitTxsResponse = Type.Object({
  accepted: Type.Integer({ minimum: 0, description: 'how many were admitted to the mempool' }),
  results: Type.Array(
    Type.Union([
      Type.Object({ hash: Hash('the admitted transaction: poll GET /v1/tx/{hash} for its height') }),
      Type.Object({
        status: Type.Integer({ description: 'the status POST /v1/tx would have answered for this one alone' }),
        error: ErrorBody.properties.error,
      }),
    ]),
    { description: 'one per submitted transaction, in order' },
  ),
})

export const HashParams = Type.Object({
  hash: Type.String({ pattern: '^[0-9a-fA-F]{64}$', description: 'transaction hash, hex' }),
})

export const TxResponse = Type.Object({
  hash: Hash('transaction hash'),
  height: Height('height of the block that includes it'),
  ok: Type.Boolean({
    description: 'false when the body failed: the transaction is in the block, its fee charged, its effects discarded',
  }),
  reason: Type.Optional(
    Type.String({ description: "why the body failed (a TxError reason, e.g. 'insufficient-funds')" }),
  ),
})

// ---- state proofs ----------------------------------------------------------------------------

export const ProofQuery = Type.Object({
  key: Type.String({
    pattern: '^([0-9a-fA-F]{2})+$',
    maxLength: 2 * MAX_PROOF_KEY_BYTES,
    description: 'raw state key, hex',
  }),
  height: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      description:
        'prove against the state root of this height: the latest, or an epoch edge for the validator-set key (404 otherwise). Default: the latest',
    }),
  ),
})

export const ProofResponse = Type.Object({
  height: Height('height whose state root the proof is against'),
  root: Hex('state root'),
  key: Hex('the key'),
  value: Type.Union([Hex('the value'), Type.Null()], { description: 'null: the proof shows the key is absent' }),
  proof: Hex('encodeProof(StateProof): canonical dag-cbor; check it with verifyProof'),
})

export type ErrorJson = Type.Static<typeof ErrorBody>
export type StatusJson = Type.Static<typeof StatusResponse>
export type BlockJson = Type.Static<typeof BlockResponse>
export type TxJsonView = Type.Static<typeof TxJson>
export type AccountJson = Type.Static<typeof AccountResponse>
export type SubmitTxJson = Type.Static<typeof SubmitTxResponse>
export type SubmitTxsJson = Type.Static<typeof SubmitTxsResponse>
export type TxStatusJson = Type.Static<typeof TxResponse>
export type ProofJson = Type.Static<typeof ProofResponse>
export type LightBlockJson = Type.Static<typeof LightBlockResponse>

// ---- operator --------------------------------------------------------------------------------

export const OperatorResponse = Type.Object({ did: Type.String({ description: "the node's own account" }) })

export const OperatorTransferBody = Type.Object(
  {
    to: Type.String({ minLength: 1, maxLength: 256, description: 'the recipient, a did:key' }),
    amount: Type.String({
      pattern: '^[1-9][0-9]*$',
      maxLength: 20,
      description: 'base units, a positive decimal string',
    }),
    memo: Type.Optional(Type.String({ maxLength: 1024, description: 'a note stored with the transfer (UTF-8)' })),
    fee: Type.Optional(Amount('fee in base units (default: the chain minimum)')),
  },
  { additionalProperties: false },
)

export const OperatorTransferResponse = Type.Object({
  hash: Hash('transaction hash: poll GET /v1/tx/{hash} for its height'),
  from: Type.String({ description: "the node's account that pays" }),
  nonce: Amount('the nonce the transfer was signed with'),
})

// ---- events and metrics ----------------------------------------------------------------------

export const EventsQuery = Type.Object({
  types: Type.Optional(
    Type.String({
      maxLength: 200,
      description: `comma-separated event types to receive (default: all): ${EVENT_TYPES.join(', ')}`,
    }),
  ),
})

export const NodeInfoResponse = Type.Object({
  version: Type.String({ description: 'Donghae version' }),
  node: Type.String({ description: 'Node.js version' }),
  platform: Type.String({ description: 'os-arch, e.g. darwin-arm64' }),
  uptimeSeconds: Type.Integer({ minimum: 0, description: 'seconds since the API started' }),
})

export type NodeInfoJson = Type.Static<typeof NodeInfoResponse>
export type OperatorJson = Type.Static<typeof OperatorResponse>
export type OperatorTransferJson = Type.Static<typeof OperatorTransferResponse>
export type OperatorTransferRequestJson = Type.Static<typeof OperatorTransferBody>
