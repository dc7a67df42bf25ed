/**
 * Operator routes (/v1/operator): they act with the node's own key, so each needs the bearer
 * token (`requireOperator`; declared as the `operatorToken` security scheme in the OpenAPI
 * document). A request without it is 401 and reaches no handler.
 */
import type { FastifyPluginAsync, RouteOptions } from 'fastify'
import type Type from 'typebox'
import { toHex, utf8 } from '../../core/bytes.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { parseUint64 } from '../../core/uint.ts'
import { MAX_MEMO_BYTES } from '../../bank/bank.ts'
import { parseDidKey } from '../../identity/did-key.ts'
import { TxError } from '../../chain/errors.ts'
import type { ChainApi } from '../chain-api.ts'
import { OPERATOR_SECURITY, requireOperator } from '../auth.ts'
import type { OperatorApi, OperatorTransfer } from '../operator-api.ts'
import { ERROR_RESPONSES, OperatorResponse, OperatorTransferBody, OperatorTransferResponse } from '../schemas.ts'

function transferRequest(body: Type.Static<typeof OperatorTransferBody>): OperatorTransfer {
  parseDidKey(body.to)
  const amount = parseUint64(body.amount, 'body/amount')
  if (amount === 0n) throw new InvalidInputError('body/amount must be positive')
  const request: OperatorTransfer = { to: body.to, amount }
  if (body.fee !== undefined) request.fee = parseUint64(body.fee, 'body/fee')
  if (body.memo !== undefined) {
    const memo = utf8(body.memo)
    if (memo.length > MAX_MEMO_BYTES)
      throw new InvalidInputError(`body/memo is ${memo.length} bytes of UTF-8; at most ${MAX_MEMO_BYTES} are allowed`)
    request.memo = memo
  }
  return request
}

/**
 * The mempool admits a transfer without executing it, so an overdraft would be accepted and then
 * silently dropped from the block: refuse it here, where the operator can read why.
 */
function checkFunds(chain: ChainApi, did: string, transfer: OperatorTransfer): void {
  const { balance } = chain.account(did)
  const needed = transfer.amount + (transfer.fee ?? 0n)
  if (balance < needed)
    throw new TxError(
      'insufficient-funds',
      `the node's account holds ${balance} and this transfer needs ${needed} plus the fee`,
    )
}

function operatorRouteTable(operator: OperatorApi, chain: ChainApi): RouteOptions[] {
  return [
    {
      method: 'GET',
      url: '/v1/operator',
      onRequest: requireOperator,
      schema: {
        summary: "Checks the operator token; answers the node's own account",
        tags: ['operator'],
        security: OPERATOR_SECURITY,
        response: { 200: OperatorResponse, ...ERROR_RESPONSES },
      },
      handler: async () => ({ did: operator.did }),
    },
    {
      method: 'POST',
      url: '/v1/operator/transfer',
      onRequest: requireOperator,
      schema: {
        summary: "Sends tokens from the node's own account (signed with its key)",
        description:
          '202 once the transfer is in the mempool; poll GET /v1/tx/{hash} for its height. 400 TX_REJECTED with a reason (e.g. insufficient-funds) when the chain refuses it.',
        tags: ['operator'],
        security: OPERATOR_SECURITY,
        body: OperatorTransferBody,
        response: { 202: OperatorTransferResponse, ...ERROR_RESPONSES },
      },
      handler: async (request, reply) => {
        const transfer = transferRequest(request.body as Type.Static<typeof OperatorTransferBody>)
        checkFunds(chain, operator.did, transfer)
        const { hash, nonce } = await operator.transfer(transfer)
        return reply.code(202).send({ hash: toHex(hash), from: operator.did, nonce: nonce.toString() })
      },
    },
  ]
}

export const operatorRoutes: FastifyPluginAsync<{ operator: OperatorApi; chain: ChainApi }> = async (
  app,
  { operator, chain },
) => {
  for (const route of operatorRouteTable(operator, chain)) app.route(route)
}
