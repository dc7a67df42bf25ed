/**
 * Adapters between the node's parts and the narrow interfaces the API and the inference
 * components ask for: the network view (`NetApi`), the NAT view, a settlement's proof.
 */
import type { DonghaeConfig } from '../core/config.ts'
import { toHex } from '../core/bytes.ts'
import type { StateReader } from '../chain/state-view.ts'
import { inclusionProof } from '../inference/chain/settle.ts'
import { batchKey } from '../inference/chain/state.ts'
import type { SettlementView } from '../api/inference-api.ts'
import { didFromPeerId } from '../identity/peer-id.ts'
import type { NatView, NetApi } from '../api/net-api.ts'
import type { DonghaeHost } from '../net/host.ts'
import type { NetworkService } from '../net/network.ts'
import type { MappingStatus } from '../net/nat/manager.ts'

/** The DID of a libp2p peer ('' for a peer whose key is not Ed25519). */
export function peerDid(peerId: unknown): string {
  try {
    return didFromPeerId(peerId as Parameters<typeof didFromPeerId>[0])
  } catch {
    return ''
  }
}

/** The API's view of the port-mapping state. */
export function natView(mode: DonghaeConfig['nat'], status: MappingStatus | undefined): NatView {
  if (mode === 'off') return { method: 'off', reason: 'port mapping is off (config nat = off)' }
  const mapping = status?.mapping
  if (mapping !== undefined) {
    return {
      method: mapping.method,
      externalAddress: `${mapping.externalAddress}:${mapping.externalPort}`,
      leaseSeconds: mapping.leaseSeconds,
    }
  }
  const reason = status?.reason ?? (status === undefined ? 'waiting for the p2p listener' : `state ${status.state}`)
  return {
    method: 'none',
    reason: `no port mapping available: ${reason}; peers outside this network cannot dial this node (it can still dial out, and relay through peers)`,
  }
}

/** What `GET /v1/net*` and `/v1/did/:did` serve. */
export function netApi(host: DonghaeHost, network: NetworkService, nat: DonghaeConfig['nat']): NetApi {
  return {
    peerId: () => host.peerId.toString(),
    addresses: () => host.getMultiaddrs().map(String),
    peers: () =>
      host.getConnections().map((c) => ({
        did: peerDid(c.remotePeer),
        peerId: c.remotePeer.toString(),
        addresses: [c.remoteAddr.toString()],
      })),
    nat: () => {
      const relay = host.services.relayFallback?.status().relay
      return { ...natView(nat, host.services.nat?.status()), ...(relay === undefined ? {} : { relay }) }
    },
    resolveDid: (did) => network.resolveDid(did),
  }
}

/** A settled job's receipt with its Merkle path in its settle batch, as `GET /v1/jobs/:jobId/settlement` serves it. */
export function settlementView(state: StateReader, jobId: string): SettlementView | undefined {
  const found = inclusionProof(state, jobId)
  if (found === undefined) return undefined
  return {
    jobId,
    receiptId: toHex(found.settlement.receiptId),
    worker: found.settlement.worker,
    height: found.settlement.height,
    batchKey: batchKey(found.settlement.height, found.settlement.batch),
    root: toHex(found.root),
    index: found.proof.index,
    count: found.proof.count,
    proof: found.proof.siblings.map((s) => ({ hash: toHex(s.hash), right: s.right })),
  }
}
