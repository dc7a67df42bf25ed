/**
 * Where a running node's events come from, as small adapters the composition root (node.ts)
 * plugs into the event bus: commits (blocks, finality, slashes in the block's chain events),
 * libp2p peer connections, and the port-mapping state.
 */
import { toHex } from '../core/bytes.ts'
import { blockId, type Block } from '../chain/block.ts'
import type { ChainEvent } from '../chain/host.ts'
import type { EventBus, EventMap } from './events.ts'
import type { NatView } from './net-api.ts'

/**
 * How often the NAT state is compared with the last one published.
 * @default 2 000 ms
 */
export const NAT_POLL_MS = 2_000

/** A chain event that reports a slash, as the bus's `slash` payload; undefined for any other event. */
export function slashFromChainEvent(event: ChainEvent): EventMap['slash'] | undefined {
  const module = event.type.split('.')[0] ?? ''
  const a = event.attributes
  if (module === 'staking' && event.type.includes('slash')) {
    return { module, validator: a.validator ?? '', amount: a.amount ?? '0', reason: a.reason ?? event.type }
  }
  if (event.type === 'inference.slashed' || (module === 'inference' && event.type.includes('slash'))) {
    return { module: 'inference', worker: a.worker ?? '', amount: a.amount ?? '0', reason: a.reason ?? event.type }
  }
  return undefined
}

/** Publishes `block`, `finality` and any `slash` events of one commit. */
export function publishCommit(bus: EventBus, block: Block, events: readonly ChainEvent[], now: number): void {
  const h = block.header
  bus.publish('block', {
    height: h.height,
    id: toHex(blockId(h)),
    time: h.time,
    txs: block.txs.length,
    proposer: h.proposer,
  })
  bus.publish('finality', { height: h.height, seconds: Math.max(0, now - h.time) / 1000 })
  for (const event of events) {
    const slash = slashFromChainEvent(event)
    if (slash !== undefined) bus.publish('slash', slash)
  }
}

/** What `watchPeers` needs from a libp2p node. */
export interface PeerEventSource {
  addEventListener(type: 'peer:connect' | 'peer:disconnect', listener: (event: CustomEvent<unknown>) => void): void
  removeEventListener(type: 'peer:connect' | 'peer:disconnect', listener: (event: CustomEvent<unknown>) => void): void
  getPeers(): unknown[]
}

/**
 * Publishes `peer` events on libp2p's peer:connect / peer:disconnect (one per peer, however many
 * connections it has). `didOf` names the peer's DID ('' when it has none). Returns the stop function.
 */
export function watchPeers(bus: EventBus, host: PeerEventSource, didOf: (peerId: unknown) => string): () => void {
  const on =
    (connected: boolean) =>
    (event: CustomEvent<unknown>): void => {
      bus.publish('peer', {
        peerId: String(event.detail),
        did: didOf(event.detail),
        connected,
        peers: host.getPeers().length,
      })
    }
  const onConnect = on(true)
  const onDisconnect = on(false)
  host.addEventListener('peer:connect', onConnect)
  host.addEventListener('peer:disconnect', onDisconnect)
  return () => {
    host.removeEventListener('peer:connect', onConnect)
    host.removeEventListener('peer:disconnect', onDisconnect)
  }
}

export function natEvent(view: NatView): EventMap['nat'] {
  const relay = view.relay === undefined ? {} : { relay: { peer: view.relay.peer, address: view.relay.address } }
  return 'reason' in view
    ? { method: view.method, reason: view.reason, ...relay }
    : { method: view.method, externalAddress: view.externalAddress, ...relay }
}

/**
 * Publishes a `nat` event now and whenever the mapping's method, external address or relay changes
 * (checked every `intervalMs`). Returns the stop function.
 */
export function watchNat(bus: EventBus, read: () => NatView, intervalMs = NAT_POLL_MS): () => void {
  let last = ''
  const check = (): void => {
    const event = natEvent(read())
    const key = `${event.method} ${event.externalAddress ?? ''} ${event.relay?.address ?? ''}`
    if (key === last) return
    last = key
    bus.publish('nat', event)
  }
  check()
  const timer = setInterval(check, intervalMs)
  timer.unref?.()
  return () => clearInterval(timer)
}
