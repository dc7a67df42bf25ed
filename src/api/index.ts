/** api: the node's HTTP API (server and routes) and a typed client for it. */
export { createApiServer, toHttpError, type ApiServerOptions } from './server.ts'
export { DonghaeClient, type CallOptions, type DonghaeClientOptions } from './client.ts'
export { ApiError, NotFoundError, API_ERROR_CODES, type ApiErrorInit, type ClientErrorCode } from './errors.ts'
export type { ChainApi, NodeStatus, AccountView } from './chain-api.ts'
export type {
  AccountJson,
  BlockJson,
  ErrorJson,
  ProofJson,
  StatusJson,
  SubmitTxJson,
  SubmitTxsJson,
  TxJsonView,
  TxStatusJson,
} from './schemas.ts'
export {
  DEFAULT_NODE_URL,
  NODE_URL_ENV,
  DEFAULT_RATE_LIMIT,
  MAX_BODY_BYTES,
  DEFAULT_REQUEST_TIMEOUT_MS,
} from './constants.ts'
