/**
 * What the directory routes (routes/directory.ts; seed 004's discovery server) need from a node:
 * signed registrations in, ranked search out. The node implements it over its DirectoryService
 * (src/directory/service.ts) when `directory: true` in its config.
 *
 * Routes (JSON; errors are `{ error: { code, message } }` with the DirectoryError's status):
 *
 *     POST   /v1/directory/register   (alias POST /register)    body: a signed registration
 *            -> 201 (new DID) or 200 (update) { did, seq, expires, change }
 *     GET    /v1/directory/search     (alias GET /search)       ?query=&category=&tag=&limit=&cursor=
 *            -> 200 { entries: DirectoryEntryView[], cursor? }
 *     GET    /v1/directory/entries/:did                          -> 200 DirectoryEntryView | 404
 *     GET    /v1/directory/resolve/:did                          -> 200 DirectoryResolution | 404
 *     DELETE /v1/directory/register   (alias DELETE /register)  body: a signed deletion
 *            -> 200 { did, seq, change: 'deleted' }
 *
 * Operator routes (the node's own entry, signed with its key; bearer token; optional methods):
 *
 *     POST   /v1/operator/directory/register   body: OwnRegistration -> 201/200 as POST /v1/directory/register
 *     DELETE /v1/operator/directory/register   (no body)             -> 200 { did, seq, change: 'deleted' }
 *
 * `client` is who sent the request (the socket's address; an IPv6 address is keyed by its /64),
 * charged against the per-client rate limit.
 */
import type { SearchQuery } from '../directory/store.ts'
import type { DidRecordView } from './net-api.ts'

/** A registration as the API shows it (the signed fields, verbatim, plus its search score). */
export interface DirectoryEntryView {
  did: string
  description: string
  categories: string[]
  tags: string[]
  bootstrap: string[]
  endpoint: string
  seq: number
  /** Milliseconds since the Unix epoch. */
  expires: number
  signature: string
  /** bm25 rank when the search had a text query (lower is better). */
  score?: number
}

/** A directory entry checked against the DID document the DHT holds (issue 13, part 2). */
export interface DirectoryResolution {
  entry: DirectoryEntryView
  /** The DID record found in the DHT (as GET /v1/did/:did shows it); absent when none was found in time. */
  document?: DidRecordView
  /** True when the document was found and agrees with the entry (same key, endpoint, addresses). */
  consistent: boolean
  /** What disagrees, one line each (empty when consistent). */
  problems: string[]
}

export interface DirectoryWriteResult {
  did: string
  seq: number
  change: 'added' | 'updated' | 'deleted'
  expires?: number
}

/** The node's own registration, as the operator asks for it; the node fills in the rest and signs. */
export interface OwnRegistration {
  description: string
  categories: string[]
  /** @default [] */
  tags?: string[]
  /** @default the node's signalling endpoint (`<api>/v1/webrtc/offer`) */
  endpoint?: string
  /** @default the node's own p2p addresses (at most 8) */
  bootstrap?: string[]
  /** How long the entry lives. @default 7 days; at most 30 days */
  expiresInMs?: number
}

export interface DirectoryApi {
  register(body: unknown, client: string): DirectoryWriteResult
  remove(body: unknown, client: string): DirectoryWriteResult
  search(query: SearchQuery, client: string): { entries: DirectoryEntryView[]; cursor?: string }
  entry(did: string): DirectoryEntryView | undefined
  resolve(did: string, signal?: AbortSignal): Promise<DirectoryResolution | undefined>
  /** Signs the node's own registration with its key (seq above the stored one) and registers it. */
  registerOwn?(request: OwnRegistration, client: string): DirectoryWriteResult
  /** Signs the deletion of the node's own entry and applies it. */
  removeOwn?(client: string): DirectoryWriteResult
}
