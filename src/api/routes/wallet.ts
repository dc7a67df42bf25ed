/**
 * The wallet's routes (issue 14; seed 002), over the node's WalletApi (wallet-api.ts). All of
 * them are operator routes (bearer token): a wallet's history is private and sending spends the
 * node's account. A node without a wallet answers 503 WALLET_LOCKED on every path.
 *
 *   GET  /v1/operator/wallet                        summary: balance, pending, deliveries, ledger head
 *   GET  /v1/operator/wallet/payments?limit&cursor&direction
 *   GET  /v1/operator/wallet/payments/{id}
 *   GET  /v1/operator/wallet/payments/{id}/invoice  the invoice's bytes (attachment)
 *   POST /v1/operator/wallet/send                   202 the payment, pending
 *   GET  /v1/operator/wallet/deliveries
 *   POST /v1/operator/wallet/verify                 200 { ok, entries, head } | 409 LEDGER_TAMPERED
 *
 * Errors: 400 BAD_REQUEST (DID, amount, memo, invoice) or the envelope's code, 402
 * INSUFFICIENT_FUNDS, 404 NOT_FOUND, 409 LEDGER_TAMPERED (details.index: the first bad entry),
 * 413 (body over WALLET_BODY_LIMIT), 503 WALLET_LOCKED.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import Type from '../schema-builder.ts'
import { EnvelopeError, MAX_INVOICE_BYTES, MAX_MEMO_BYTES } from '../../wallet/envelope.ts'
import { LedgerError, LedgerTamperedError } from '../../wallet/ledger.ts'
import { InsufficientFundsError } from '../../wallet/service.ts'
import type { WalletApi } from '../wallet-api.ts'
import { OPERATOR_SECURITY, requireOperator } from '../auth.ts'
import { NotFoundError } from '../errors.ts'
import { ERROR_RESPONSES } from '../schemas.ts'
import { InvalidInputError } from '../../core/errors.ts'

type Static<T extends Type.TSchema> = Type.Static<T>

/** Largest body of POST /v1/operator/wallet/send: the invoice as base64 and the rest. */
export const WALLET_BODY_LIMIT = Math.ceil((MAX_INVOICE_BYTES * 4) / 3) + 8 * 1024
const NO_WALLET = 'this node runs no wallet: it starts one with the keystore password (donghae node)'
const TAGS = ['wallet', 'operator']
const AMOUNT = Type.String({ pattern: '^[1-9][0-9]{0,19}$', description: 'base units, decimal' })
const HEX_ID = Type.String({ pattern: '^[0-9a-f]{32}$' })

const PaymentJson = Type.Object({
  id: Type.String(),
  direction: Type.Union([Type.Literal('sent'), Type.Literal('received')]),
  counterparty: Type.String(),
  from: Type.String(),
  to: Type.String(),
  amount: Type.String(),
  memo: Type.String(),
  invoice: Type.Optional(Type.Object({ name: Type.String(), bytes: Type.Integer() })),
  createdAt: Type.Integer(),
  envelopeHash: Type.String(),
  txHash: Type.Optional(Type.String()),
  status: Type.Union([Type.Literal('pending'), Type.Literal('committed'), Type.Literal('failed')]),
  height: Type.Optional(Type.Integer()),
  failure: Type.Optional(Type.String()),
  delivery: Type.Union([Type.Literal('queued'), Type.Literal('stored'), Type.Literal('acknowledged')]),
  receipt: Type.Optional(Type.Object({ at: Type.Integer(), signature: Type.String() })),
  ledgerIndex: Type.Integer(),
})

const SummaryJson = Type.Object({
  did: Type.String(),
  balance: Type.String(),
  pending: Type.Object({ count: Type.Integer(), amount: Type.String() }),
  deliveriesPending: Type.Integer(),
  ledger: Type.Object({ entries: Type.Integer(), head: Type.String() }),
  fee: Type.String(),
})

const DeliveryJson = Type.Object({
  id: Type.String(),
  to: Type.String(),
  envelopeHash: Type.String(),
  attempts: Type.Integer(),
  nextAttemptAt: Type.Integer(),
  storedWith: Type.Array(Type.String()),
  lastError: Type.Optional(Type.String()),
  expiresAt: Type.Integer(),
})

const SendBody = Type.Object(
  {
    to: Type.String({ minLength: 1, maxLength: 128 }),
    amount: AMOUNT,
    memo: Type.Optional(Type.String({ maxLength: MAX_MEMO_BYTES })),
    invoice: Type.Optional(
      Type.Object(
        {
          name: Type.String({ minLength: 1, maxLength: 255 }),
          base64: Type.String({ maxLength: Math.ceil((MAX_INVOICE_BYTES * 4) / 3) + 4 }),
        },
        { additionalProperties: false },
      ),
    ),
    fee: Type.Optional(AMOUNT),
  },
  { additionalProperties: false },
)

const HistoryQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
    cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,12}$' })),
    direction: Type.Optional(Type.Union([Type.Literal('sent'), Type.Literal('received')])),
  },
  { additionalProperties: false },
)

function walletErrorHandler(err: unknown, _request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (err instanceof InsufficientFundsError)
    return reply.code(402).send({ error: { code: 'INSUFFICIENT_FUNDS', message: err.message } })
  if (err instanceof LedgerTamperedError)
    return reply
      .code(409)
      .send({ error: { code: err.code, message: err.message, reason: err.reason, index: err.index } })
  if (err instanceof LedgerError) return reply.code(409).send({ error: { code: err.code, message: err.message } })
  if (err instanceof EnvelopeError)
    return reply.code(400).send({ error: { code: 'BAD_REQUEST', message: err.message, reason: err.code } })
  throw err
}

function decodeInvoice(
  invoice: { name: string; base64: string } | undefined,
): { name: string; bytes: Uint8Array } | undefined {
  if (invoice === undefined) return undefined
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(invoice.base64)) throw new InvalidInputError('the invoice is not base64')
  return { name: invoice.name, bytes: new Uint8Array(Buffer.from(invoice.base64, 'base64')) }
}

export const walletRoutes: FastifyPluginAsync<{ wallet: WalletApi }> = async (app, { wallet }) => {
  app.setErrorHandler(walletErrorHandler)
  app.get(
    '/v1/operator/wallet',
    {
      onRequest: requireOperator,
      schema: {
        summary: "The wallet's balance, pending payments and deliveries, and its ledger's head",
        tags: TAGS,
        security: OPERATOR_SECURITY,
        response: { 200: SummaryJson, ...ERROR_RESPONSES },
      },
    },
    async () => wallet.summary(),
  )
  app.get(
    '/v1/operator/wallet/payments',
    {
      onRequest: requireOperator,
      schema: {
        summary: 'Payments sent and received, newest first, memos decrypted',
        tags: TAGS,
        security: OPERATOR_SECURITY,
        querystring: HistoryQuery,
        response: {
          200: Type.Object({ payments: Type.Array(PaymentJson), cursor: Type.Optional(Type.String()) }),
          ...ERROR_RESPONSES,
        },
      },
    },
    async (request) => wallet.history(request.query as Static<typeof HistoryQuery>),
  )
  app.get(
    '/v1/operator/wallet/payments/:id',
    {
      onRequest: requireOperator,
      schema: {
        summary: 'One payment',
        tags: TAGS,
        security: OPERATOR_SECURITY,
        params: Type.Object({ id: HEX_ID }),
        response: { 200: PaymentJson, ...ERROR_RESPONSES },
      },
    },
    async (request) => {
      const { id } = request.params as { id: string }
      const payment = wallet.payment(id)
      if (payment === undefined) throw new NotFoundError(`no payment ${id} in this wallet`)
      return payment
    },
  )
  app.get(
    '/v1/operator/wallet/payments/:id/invoice',
    {
      onRequest: requireOperator,
      schema: {
        summary: "A payment's invoice file",
        tags: TAGS,
        security: OPERATOR_SECURITY,
        params: Type.Object({ id: HEX_ID }),
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string }
      const invoice = wallet.invoice(id)
      if (invoice === undefined) throw new NotFoundError(`payment ${id} has no invoice in this wallet`)
      const safeName = invoice.name.replace(/[^A-Za-z0-9._-]/g, '_')
      return reply
        .header('content-type', 'application/octet-stream')
        .header('content-disposition', `attachment; filename="${safeName}"`)
        .header('x-content-type-options', 'nosniff')
        .send(Buffer.from(invoice.bytes))
    },
  )
  app.post(
    '/v1/operator/wallet/send',
    {
      onRequest: requireOperator,
      bodyLimit: WALLET_BODY_LIMIT,
      schema: {
        summary:
          'Pay a DID: the value on chain, the memo and invoice sealed to the recipient and delivered peer to peer',
        tags: TAGS,
        security: OPERATOR_SECURITY,
        body: SendBody,
        response: { 202: PaymentJson, ...ERROR_RESPONSES },
      },
    },
    async (request, reply) => {
      const body = request.body as Static<typeof SendBody>
      const invoice = decodeInvoice(body.invoice)
      const payment = await wallet.send({
        to: body.to,
        amount: BigInt(body.amount),
        ...(body.memo === undefined ? {} : { memo: body.memo }),
        ...(invoice === undefined ? {} : { invoice }),
        ...(body.fee === undefined ? {} : { fee: BigInt(body.fee) }),
      })
      return reply.code(202).send(payment)
    },
  )
  app.get(
    '/v1/operator/wallet/deliveries',
    {
      onRequest: requireOperator,
      schema: {
        summary: 'Envelopes waiting for their recipient: attempts, next attempt, the peers holding a copy',
        tags: TAGS,
        security: OPERATOR_SECURITY,
        response: { 200: Type.Object({ deliveries: Type.Array(DeliveryJson) }), ...ERROR_RESPONSES },
      },
    },
    async () => ({ deliveries: wallet.deliveries() }),
  )
  app.post(
    '/v1/operator/wallet/verify',
    {
      onRequest: requireOperator,
      schema: {
        summary: "Re-read the ledger's files and verify every entry (409 names the first bad index)",
        tags: TAGS,
        security: OPERATOR_SECURITY,
        response: {
          200: Type.Object({ ok: Type.Literal(true), entries: Type.Integer(), head: Type.String() }),
          ...ERROR_RESPONSES,
        },
      },
    },
    async () => wallet.verify(),
  )
}

/** A node without a wallet: every wallet path answers 503 WALLET_LOCKED (after the token check). */
export const noWalletRoutes: FastifyPluginAsync = async (app) => {
  for (const url of ['/v1/operator/wallet', '/v1/operator/wallet/*'])
    app.route({
      method: ['GET', 'POST'],
      url,
      onRequest: requireOperator,
      schema: { hide: true },
      handler: async (_request, reply) =>
        reply.code(503).send({ error: { code: 'WALLET_LOCKED', message: NO_WALLET } }),
    })
}
