/** What the HTTP API needs from a node's network layer (present when the node runs on libp2p). */

/** A circuit-relay reservation: peers outside reach this node through `peer` at `address`. */
export interface RelayView {
  peer: string
  address: string
}

export type NatView = (
  | { method: 'pmp' | 'upnp'; externalAddress: string; leaseSeconds: number }
  | { method: 'none'; reason: string }
  | { method: 'off'; reason: string }
) & { relay?: RelayView }

export interface PeerView {
  did: string
  peerId: string
  addresses: string[]
}

export interface DidRecordView {
  did: string
  addresses: string[]
  services: Array<{ id: string; type: string; serviceEndpoint: string }>
  seq: number
  expires: number
}

export interface NetApi {
  peerId(): string
  addresses(): string[]
  peers(): PeerView[]
  nat(): NatView
  /** The newest valid DID record of `did` in the DHT, or undefined. */
  resolveDid(did: string): Promise<DidRecordView | undefined>
}
