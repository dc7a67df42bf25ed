/** A node's libp2p host (createHost) on 127.0.0.1 with a random port and key: TCP only, no mDNS. */
import { createHost, type DonghaeHost, type HostOptions } from '../../src/net/host.ts'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'

export function loopbackHost(options: Partial<HostOptions> = {}): Promise<DonghaeHost> {
  return createHost({
    key: Ed25519KeyPair.generate(),
    host: '127.0.0.1',
    port: 0,
    mdns: false,
    quic: false,
    webSockets: false,
    ...options,
  })
}
