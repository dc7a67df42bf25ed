/**
 * The node's DID directory (issue 13; config `directory: true`): `DirectoryApi` over a
 * `DirectoryService` whose index lives in `<data>/directory.sqlite` and whose gossip runs on the
 * node's transport (topic `directory/1`), so a registration made at one directory is found by a
 * search at any other. `resolve` fetches the DID's record from the DHT, as `GET /v1/did/:did`
 * does, and checks the directory entry against it. `registerOwn`/`removeOwn` sign the node's own
 * entry with its key (the operator routes).
 */
import { multiaddr } from '@multiformats/multiaddr'
import { systemClock, type Clock } from '../core/clock.ts'
import { describeError, InvalidInputError } from '../core/errors.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import type { PeerTransport } from '../core/transport.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import { peerIdFromDid } from '../identity/peer-id.ts'
import type { SignedDidRecord } from '../net/did-records.ts'
import {
  DIRECTORY_TOPIC,
  DirectoryService,
  encodeDeletion,
  encodeRegistration,
  MAX_BOOTSTRAP,
  MAX_BOOTSTRAP_CHARS,
  registrationToJson,
  signDeletion,
  signRegistration,
  type DirectoryLimits,
  type SearchQuery,
  type SignedDeletion,
  type SignedRegistration,
} from '../directory/index.ts'
import type {
  DirectoryApi,
  DirectoryEntryView,
  DirectoryResolution,
  DirectoryWriteResult,
  OwnRegistration,
} from '../api/directory-api.ts'
import type { DidRecordView } from '../api/net-api.ts'

/** How long `resolve` looks for the DID record in the DHT. @default 5 s */
export const RESOLVE_TIMEOUT_MS = 5_000
/** How long the node's own entry lives when the operator does not say. @default 7 days */
export const DEFAULT_OWN_EXPIRY_MS = 7 * 24 * 60 * 60 * 1000
/**
 * When a write accepted here is gossiped again: gossip is sent once, and a directory that had
 * not yet joined this node's mesh (just started, just connected) would never hear of it. The
 * others ignore a copy they already hold.
 * @default 5 s and 30 s after the write
 */
export const REPUBLISH_AFTER_MS: readonly number[] = [5_000, 30_000]
/** Re-publications waiting at once; beyond it a write is gossiped only once. @default 10,000 */
export const MAX_PENDING_REPUBLISH = 10_000
/** Where the node takes signed WebRTC offers, under its API (routes/webrtc.ts). */
export const SIGNALLING_PATH = '/v1/webrtc/offer'

export interface NodeDirectoryOptions {
  /** The node's data directory (`directory.sqlite` there); omitted: in memory. */
  dataDir?: string
  /** Gossip with the other directories; omitted: this directory stands alone. */
  transport?: Pick<PeerTransport, 'publish' | 'subscribe'>
  /** The DHT lookup of a DID record (`NetworkService.resolveDid`); omitted: resolve finds none. */
  resolveDid?: (did: string, options: { signal?: AbortSignal }) => Promise<SignedDidRecord | undefined>
  /** The node's key, for its own entry (`registerOwn`, `removeOwn`). */
  key?: Ed25519KeyPair
  /** The node's signalling endpoint, the default of its own entry. */
  endpoint?: () => string
  /** The node's own p2p addresses, the default bootstrap of its own entry. */
  addresses?: () => string[]
  clock?: Clock
  limits?: DirectoryLimits
  /** @default RESOLVE_TIMEOUT_MS */
  resolveTimeoutMs?: number
  /** @default REPUBLISH_AFTER_MS */
  republishAfterMs?: readonly number[]
  logger?: Logger
}

/** A registration as the API shows it. */
export function entryView(record: SignedRegistration, score?: number): DirectoryEntryView {
  return score === undefined ? registrationToJson(record) : { ...registrationToJson(record), score }
}

/**
 * A JSON body with its base64url signature turned into bytes, unverified: the index charges the
 * client's rate limit before it verifies anything. A body that is not of that shape passes as it
 * is, and the index refuses it (400).
 */
function withSignatureBytes(body: unknown): unknown {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return body
  const signature = (body as { signature?: unknown }).signature
  if (typeof signature !== 'string' || !/^[A-Za-z0-9_-]{86}$/.test(signature)) return body
  return { ...body, signature: new Uint8Array(Buffer.from(signature, 'base64url')) }
}

function didRecordView(record: SignedDidRecord): DidRecordView {
  return {
    did: record.did,
    addresses: [...record.addresses],
    services: record.services.map((s) => ({ id: s.id, type: s.type, serviceEndpoint: s.serviceEndpoint })),
    seq: record.seq,
    expires: record.expires,
  }
}

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin
  } catch {
    return undefined
  }
}

/** A multiaddr without its trailing `/p2p/<id>`. */
function transportPart(address: string): string {
  return address.replace(/\/p2p\/[^/]+$/, '')
}

/**
 * What disagrees between a directory entry and the DID record the DHT holds, one line each:
 * the record must be the same DID's (the same key signed both), must serve the entry's endpoint
 * (same origin as one of its service endpoints) and must list every bootstrap address the entry
 * gives for the DID's own peer.
 */
export function resolutionProblems(entry: SignedRegistration, record: SignedDidRecord | undefined): string[] {
  if (record === undefined) return ['no DID record for this DID was found in the DHT in time']
  if (record.did !== entry.did) return [`the DHT record is signed for ${record.did}, not for ${entry.did}`]
  const problems: string[] = []
  const origin = originOf(entry.endpoint)
  const served = record.services.map((s) => s.serviceEndpoint)
  if (origin === undefined || !served.some((s) => originOf(s) === origin))
    problems.push(
      `endpoint ${entry.endpoint} is not at any service the DID record lists (${served.join(', ') || 'none'})`,
    )
  if (record.addresses.length === 0) problems.push('the DID record lists no addresses')
  const peer = peerIdFromDid(entry.did).toString()
  const announced = new Set(record.addresses.map(transportPart))
  for (const address of entry.bootstrap) {
    if (!address.endsWith(`/p2p/${peer}`)) continue // another DHT node: nothing to compare
    if (!announced.has(transportPart(address)))
      problems.push(`bootstrap address ${address} names this DID's peer but its DID record does not list it`)
  }
  return problems
}

/** The node's own p2p addresses that fit a registration's bootstrap list. */
function ownBootstrap(addresses: string[]): string[] {
  const fit = addresses.filter((a) => {
    if (a.length > MAX_BOOTSTRAP_CHARS) return false
    try {
      return multiaddr(a).toString() === a
    } catch {
      return false
    }
  })
  return [...new Set(fit)].slice(0, MAX_BOOTSTRAP)
}

export class NodeDirectory implements DirectoryApi {
  readonly service: DirectoryService
  readonly #options: NodeDirectoryOptions
  readonly #clock: Clock
  readonly #log: Logger
  /** Cancels of the re-publications waiting. */
  readonly #pending = new Set<() => void>()

  constructor(options: NodeDirectoryOptions = {}) {
    this.#options = options
    this.#clock = options.clock ?? systemClock
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:directory')
    this.service = new DirectoryService({
      clock: this.#clock,
      ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
      ...(options.transport === undefined ? {} : { transport: options.transport }),
      ...(options.limits === undefined ? {} : { limits: options.limits }),
      onError: (err) => this.#log.warn({ err: describeError(err) }, 'directory sweep failed'),
    })
  }

  start(): void {
    this.service.start()
  }

  /** Stops gossip and the sweep and closes the index. */
  stop(): void {
    for (const cancel of this.#pending) cancel()
    this.#pending.clear()
    this.service.stop()
  }

  /** Gossips a write accepted here again later, while it is still the DID's latest. */
  #republish(
    write: { type: 'register'; record: SignedRegistration } | { type: 'delete'; deletion: SignedDeletion },
  ): void {
    const transport = this.#options.transport
    if (transport === undefined) return
    const { did, seq } = write.type === 'register' ? write.record : write.deletion
    const bytes = write.type === 'register' ? encodeRegistration(write.record) : encodeDeletion(write.deletion)
    for (const delay of this.#options.republishAfterMs ?? REPUBLISH_AFTER_MS) {
      if (this.#pending.size >= MAX_PENDING_REPUBLISH) return
      const cancel = this.#clock.setTimer(delay, () => {
        this.#pending.delete(cancel)
        if (this.service.running && this.service.index.seqOf(did) === seq) transport.publish(DIRECTORY_TOPIC, bytes)
      })
      this.#pending.add(cancel)
    }
  }

  register(body: unknown, client: string): DirectoryWriteResult {
    const { change, record } = this.service.register(withSignatureBytes(body), { client })
    this.#republish({ type: 'register', record })
    return { did: record.did, seq: record.seq, expires: record.expires, change }
  }

  remove(body: unknown, client: string): DirectoryWriteResult {
    const { deletion } = this.service.delete(withSignatureBytes(body), { client })
    this.#republish({ type: 'delete', deletion })
    return { did: deletion.did, seq: deletion.seq, change: 'deleted' }
  }

  /** `client` is not charged: searches only read, and the API's own rate limit bounds them. */
  search(query: SearchQuery, _client: string): { entries: DirectoryEntryView[]; cursor?: string } {
    const page = this.service.search(query)
    const ranked = query.query !== undefined && query.query.trim() !== ''
    const entries = page.hits.map((h) => entryView(h.record, ranked ? h.score : undefined))
    return page.cursor === undefined ? { entries } : { entries, cursor: page.cursor }
  }

  entry(did: string): DirectoryEntryView | undefined {
    const record = this.service.get(did)
    return record === undefined ? undefined : entryView(record)
  }

  async resolve(did: string, signal?: AbortSignal): Promise<DirectoryResolution | undefined> {
    const record = this.service.get(did)
    if (record === undefined) return undefined
    const timeout = AbortSignal.timeout(this.#options.resolveTimeoutMs ?? RESOLVE_TIMEOUT_MS)
    const document = await this.#options.resolveDid?.(did, {
      signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
    })
    const problems = resolutionProblems(record, document)
    return {
      entry: entryView(record),
      ...(document === undefined ? {} : { document: didRecordView(document) }),
      consistent: document !== undefined && problems.length === 0,
      problems,
    }
  }

  #key(): Ed25519KeyPair {
    const key = this.#options.key
    if (key === undefined) throw new InvalidInputError('this directory has no node key to sign its own entry with')
    return key
  }

  #ownEndpoint(): string {
    const endpoint = this.#options.endpoint?.()
    if (endpoint === undefined) throw new InvalidInputError('give the endpoint this node takes signalling at')
    return endpoint
  }

  /** A sequence number above every one seen for `did`: the clock's milliseconds, or one more than the stored. */
  #nextSeq(did: string): number {
    return Math.max((this.service.index.seqOf(did) ?? 0) + 1, this.#clock.now())
  }

  registerOwn(request: OwnRegistration, client: string): DirectoryWriteResult {
    const key = this.#key()
    const did = didFromEd25519PublicKey(key.publicKey)
    const record = signRegistration(key, {
      description: request.description,
      categories: [...request.categories],
      tags: [...(request.tags ?? [])],
      bootstrap: request.bootstrap ?? ownBootstrap(this.#options.addresses?.() ?? []),
      endpoint: request.endpoint ?? this.#ownEndpoint(),
      seq: this.#nextSeq(did),
      expires: this.#clock.now() + (request.expiresInMs ?? DEFAULT_OWN_EXPIRY_MS),
    })
    const { change } = this.service.register(record, { client })
    this.#republish({ type: 'register', record })
    this.#log.info({ did, seq: record.seq, change }, 'registered the node in the directory')
    return { did, seq: record.seq, expires: record.expires, change }
  }

  removeOwn(client: string): DirectoryWriteResult {
    const key = this.#key()
    const did = didFromEd25519PublicKey(key.publicKey)
    const { deletion } = this.service.delete(signDeletion(key, this.#nextSeq(did)), { client })
    this.#republish({ type: 'delete', deletion })
    this.#log.info({ did, seq: deletion.seq }, 'deleted the node from the directory')
    return { did, seq: deletion.seq, change: 'deleted' }
  }
}
