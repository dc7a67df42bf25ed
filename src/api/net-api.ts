/** What the HTTP API needs from a node's network layer (present when the node runs on libp2p). */

export type NatView =
  | { method: 'pmp' | 'upnp'; externalAddress: string; leaseSeconds: number }
  | { method: 'none'; reason: string }
  | { method: 'off'; reason: string }

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
