/**
 * Chain routes (/v1): node status, blocks, accounts, transaction submission and lookup, state
 * proofs. One declarative table; each handler is a few lines over the ChainApi.
 *
 * Status codes for POST /v1/tx: 202 accepted into the mempool; 400 TX_REJECTED for a
 * transaction that is invalid (malformed, bad signature, wrong chain, stale nonce, low fee,
 * unknown kind...); 409 TX_REJECTED when it conflicts with what is already pending (reason
 * `duplicate`: the same bytes; `already-included`: the same bytes were committed a moment ago;
 * `nonce-in-use`: another pending transaction has that nonce and at least its fee); 503 TX_REJECTED when the mempool is full (reason `full`: retry later or raise
 * the fee). Every TX_REJECTED answer carries the chain's `reason` tag.
 *
 * POST /v1/txs takes 1 to MAX_SUBMIT_TXS transactions in one request and judges each on its own:
 * 200 with one result per transaction, in order - its hash, or the status and error POST /v1/tx
 * would have answered for it alone. The node gossips the admitted ones together (chain/tx-batch.ts).
 * Its rate limit counts transactions, not requests: a client gets no more of them admitted per
 * window through it than through POST /v1/tx (`submitManyRateLimit`).
 */
import type { FastifyPluginAsync, RouteOptions } from 'fastify'
import { fromHex, toHex } from '../../core/bytes.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { encodeProof } from '../../chain/state/proof.ts'
import { genesisToJson } from '../../chain/genesis.ts'
import Type from '../schema-builder.ts'
import { parseDidKey } from '../../identity/did-key.ts'
import type { ChainApi } from '../chain-api.ts'
import { NotFoundError } from '../errors.ts'
import {
  AccountResponse,
  BlockResponse,
  DidParams,
  ERROR_RESPONSES,
  HashParams,
  HeightParams,
  LightBlockResponse,
  ProofQuery,
  ProofResponse,
  StatusResponse,
  MAX_SUBMIT_TXS,
  SubmitTxBody,
  SubmitTxResponse,
  SubmitTxsBody,
  SubmitTxsResponse,
  type ErrorJson,
  TxResponse,
} from '../schemas.ts'
import { accountJson, blockJson, lightBlockJson, statusJson } from '../views.ts'

export interface ChainRoutesOptions {
  chain: ChainApi
  /** Maps a refusal to the status and body POST /v1/tx answers (the server's error mapping). */
  toHttpError?: (err: unknown) => { status: number; body: ErrorJson }
  /** Requests of POST /v1/txs per client per window (@fastify/rate-limit's route config). */
  submitManyRateLimit?: { max: number; timeWindowMs: number }
}

/** POST /v1/txs's rate limit for a server that allows `limit` requests: as many transactions, in full batches. */
export function submitManyLimit(limit: { max: number; timeWindowMs: number }): { max: number; timeWindowMs: number } {
  return { max: Math.max(1, Math.floor(limit.max / MAX_SUBMIT_TXS)), timeWindowMs: limit.timeWindowMs }
}

type Params<T extends Type.TSchema> = Type.Static<T>

/** The encoded transaction from hex (optionally 0x-prefixed) or base64 (standard or URL-safe). */
export function decodeTxText(text: string): Uint8Array {
  const hex = text.startsWith('0x') ? text.slice(2) : text
  // An encoded transaction is a dag-cbor map (first byte 0xa7), whose base64 starts with 'p':
  // never a hex digit, so trying hex first cannot misread base64.
  if (/^([0-9a-fA-F]{2})+$/.test(hex)) return fromHex(hex)
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '')
  if (/^[A-Za-z0-9+/]+$/.test(b64)) {
    const bytes = Buffer.from(b64, 'base64')
    if (bytes.toString('base64').replace(/=+$/, '') === b64) return new Uint8Array(bytes)
  }
  throw new InvalidInputError('body/tx must be the encoded signed transaction as hex or base64')
}

function chainRouteTable({ chain, toHttpError, submitManyRateLimit }: ChainRoutesOptions): RouteOptions[] {
  return [
    {
      method: 'GET',
      url: '/v1/status',
      schema: {
        summary: "The node's chain, height, consensus position, validators, mempool and peers",
        tags: ['chain'],
        response: { 200: StatusResponse, ...ERROR_RESPONSES },
      },
      handler: async () => statusJson(chain.status()),
    },
    {
      method: 'GET',
      url: '/v1/chain/blocks/:height',
      schema: {
        summary: 'A committed block with its transactions and commit certificates',
        tags: ['chain'],
        params: HeightParams,
        response: { 200: BlockResponse, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const { height } = request.params as Params<typeof HeightParams>
        const found = await chain.block(height)
        if (found === undefined) throw new NotFoundError(`no committed block at height ${height}`)
        return blockJson(found)
      },
    },
    {
      method: 'GET',
      url: '/v1/chain/headers/:height',
      schema: {
        summary: 'A block header with its full commit certificate (what a light client checks)',
        description:
          'Check it: blockId = sha256(dag-cbor(header)) = commit.blockId, and the precommits carry more than 2/3 of the power of the validator set of the header\u2019s epoch (`donghae receipt verify --node` does, from the genesis).',
        tags: ['chain'],
        params: HeightParams,
        response: { 200: LightBlockResponse, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const { height } = request.params as Params<typeof HeightParams>
        const found = await chain.block(height)
        if (found === undefined || found.commit === undefined)
          throw new NotFoundError(`no committed block with its certificate at height ${height}`)
        return lightBlockJson({ block: found.block, id: found.id, commit: found.commit })
      },
    },
    {
      method: 'GET',
      url: '/v1/chain/genesis',
      schema: {
        summary: 'The genesis document this chain started from (the file `donghae genesis` writes)',
        description: 'A light client trusts it by its hash (sha256 of its dag-cbor) or by a copy of the file.',
        tags: ['chain'],
        response: { 200: Type.Unknown(), ...ERROR_RESPONSES },
      },
      handler: async () => {
        const doc = chain.genesisDoc?.()
        if (doc === undefined) throw new NotFoundError('this node does not serve its genesis document')
        return genesisToJson(doc)
      },
    },
    {
      method: 'GET',
      url: '/v1/accounts/:did',
      schema: {
        summary: 'Balance, next nonce and stake of an account',
        tags: ['accounts'],
        params: DidParams,
        response: { 200: AccountResponse, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const { did } = request.params as Params<typeof DidParams>
        parseDidKey(did)
        return accountJson(chain.account(did))
      },
    },
    {
      method: 'POST',
      url: '/v1/tx',
      schema: {
        summary: 'Submit an encoded signed transaction to the mempool',
        description: '202 when admitted; 400, 409 or 503 TX_REJECTED with a reason when not (see the route file).',
        tags: ['transactions'],
        body: SubmitTxBody,
        response: { 202: SubmitTxResponse, ...ERROR_RESPONSES },
      },
      handler: async (request, reply) => {
        const { tx } = request.body as Params<typeof SubmitTxBody>
        const { hash } = await chain.submitTx(decodeTxText(tx))
        return reply.code(202).send({ hash: toHex(hash) })
      },
    },
    {
      method: 'POST',
      url: '/v1/txs',
      schema: {
        summary: `Submit 1 to ${MAX_SUBMIT_TXS} encoded signed transactions at once; each is judged on its own`,
        description:
          '200 with one result per transaction, in order: its hash when admitted, else the status and error POST /v1/tx would have answered. The rate limit counts transactions (see the route file).',
        tags: ['transactions'],
        body: SubmitTxsBody,
        response: { 200: SubmitTxsResponse, ...ERROR_RESPONSES },
      },
      ...(submitManyRateLimit === undefined
        ? {}
        : {
            config: {
              rateLimit: { max: submitManyRateLimit.max, timeWindow: submitManyRateLimit.timeWindowMs },
            },
          }),
      handler: async (request) => {
        const { txs } = request.body as Params<typeof SubmitTxsBody>
        // all at once: the cheap checks of each run before the signatures go to the pool together
        const outcomes = await Promise.allSettled(txs.map(async (text) => chain.submitTx(decodeTxText(text))))
        let accepted = 0
        const results = outcomes.map((outcome) => {
          if (outcome.status === 'fulfilled') {
            accepted++
            return { hash: toHex(outcome.value.hash) }
          }
          const mapped = toHttpError?.(outcome.reason)
          if (mapped === undefined || (mapped.status >= 500 && mapped.body.error.code === 'INTERNAL'))
            throw outcome.reason
          return { status: mapped.status, error: mapped.body.error }
        })
        return { accepted, results }
      },
    },
    {
      method: 'GET',
      url: '/v1/tx/:hash',
      schema: {
        summary:
          'The height at which a transaction was committed and whether its body succeeded (404 while pending or unknown)',
        tags: ['transactions'],
        params: HashParams,
        response: { 200: TxResponse, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const hash = (request.params as Params<typeof HashParams>).hash.toLowerCase()
        const outcome = await chain.txOutcome(fromHex(hash))
        if (outcome === undefined)
          throw new NotFoundError(`transaction ${hash} is not committed (it may still be pending)`)
        return { hash, ...outcome }
      },
    },
    {
      method: 'GET',
      url: '/v1/state/proof',
      schema: {
        summary:
          'A Merkle proof of a raw state key (present or absent) against the state root of a height (default: the latest)',
        tags: ['state'],
        querystring: ProofQuery,
        response: { 200: ProofResponse, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const query = request.query as Params<typeof ProofQuery>
        const key = fromHex(query.key)
        const latest = chain.prove(key)
        const found =
          query.height === undefined || query.height === latest.height
            ? latest
            : await chain.proveAt?.(key, query.height)
        if (found === undefined)
          throw new NotFoundError(
            `no proof of this key at height ${query.height}: the node proves against its latest state (height ${latest.height}) and keeps proofs of validator sets at epoch edges`,
          )
        const { height, root, value, proof } = found
        return {
          height,
          root: toHex(root),
          key: toHex(key),
          value: value === undefined ? null : toHex(value),
          proof: toHex(encodeProof(proof)),
        }
      },
    },
  ]
}

export const chainRoutes: FastifyPluginAsync<ChainRoutesOptions> = async (app, options) => {
  for (const route of chainRouteTable(options)) app.route(route)
}
