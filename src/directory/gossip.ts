/**
 * Directory-to-directory gossip on topic `directory/1`: every registration or deletion a
 * directory accepts is published, so a search at any directory finds an entry made at another.
 * A received message is fully validated before it is relayed (size, strict fields, signature by
 * the DID's key, expiry window, seq against the index): `accept` (stored, and the transport
 * relays it) when it is new, `ignore` when it is known or older, expired by this node's clock, or
 * over a rate limit, `reject` (the sender is penalized) when it is malformed or badly signed.
 */
import { decode } from '../core/codec.ts'
import { PeerBudgets } from '../core/budget.ts'
import type { GossipVerdict, PeerTransport } from '../core/transport.ts'
import {
  DirectoryError,
  MAX_REGISTRATION_BYTES,
  encodeDeletion,
  encodeRegistration,
  type SignedDeletion,
  type SignedRegistration,
} from './record.ts'
import type { DirectoryIndex } from './store.ts'

export const DIRECTORY_TOPIC = 'directory/1'

export interface DirectoryGossipOptions {
  /** Messages one peer may hand this node: `amount` per `perMs`. @default 200 per second */
  perPeer?: { amount: number; perMs: number }
  now?: () => number
  /** Called with each accepted message's kind and DID (metrics, logs). */
  onAccepted?(type: 'register' | 'delete', did: string): void
}

function isDeletionMap(raw: unknown): boolean {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return false
  const keys = Object.keys(raw)
  return keys.length === 3 && keys.includes('did') && keys.includes('seq') && keys.includes('signature')
}

export class DirectoryGossip {
  readonly #transport: Pick<PeerTransport, 'publish' | 'subscribe'>
  readonly #index: DirectoryIndex
  readonly #perPeer: PeerBudgets
  readonly #onAccepted: DirectoryGossipOptions['onAccepted']
  #unsubscribe: (() => void) | undefined

  constructor(
    transport: Pick<PeerTransport, 'publish' | 'subscribe'>,
    index: DirectoryIndex,
    options: DirectoryGossipOptions = {},
  ) {
    this.#transport = transport
    this.#index = index
    this.#perPeer = new PeerBudgets(options.perPeer ?? { amount: 200, perMs: 1000 }, options.now ?? Date.now)
    this.#onAccepted = options.onAccepted
  }

  start(): void {
    if (this.#unsubscribe !== undefined) return
    this.#unsubscribe = this.#transport.subscribe(DIRECTORY_TOPIC, (data, from) => this.receive(data, from))
  }

  stop(): void {
    this.#unsubscribe?.()
    this.#unsubscribe = undefined
  }

  publishRegistration(record: SignedRegistration): void {
    this.#transport.publish(DIRECTORY_TOPIC, encodeRegistration(record))
  }

  publishDeletion(deletion: SignedDeletion): void {
    this.#transport.publish(DIRECTORY_TOPIC, encodeDeletion(deletion))
  }

  /** Validates and applies one gossip message from peer `from`; returns the verdict. */
  receive(data: Uint8Array, from: string): GossipVerdict {
    if (!(data instanceof Uint8Array) || data.length > MAX_REGISTRATION_BYTES) return 'reject'
    if (this.#perPeer.available(from) < 1) return 'ignore'
    this.#perPeer.charge(from, 1)
    let raw: unknown
    try {
      raw = decode(data, { maxBytes: MAX_REGISTRATION_BYTES })
    } catch {
      return 'reject'
    }
    try {
      const deletion = isDeletionMap(raw)
      if (deletion) this.#index.delete(raw)
      else this.#index.register(raw)
      this.#onAccepted?.(deletion ? 'delete' : 'register', (raw as { did: string }).did)
      return 'accept'
    } catch (err) {
      if (err instanceof DirectoryError) return err.action
      throw err
    }
  }
}
