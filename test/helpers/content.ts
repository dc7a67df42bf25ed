/** Shared pieces of the content-store tests: deterministic file bytes and a bare loopback host. */
import { createCipheriv, createHash } from 'node:crypto'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { createHost, type DonghaeHost } from '../../src/net/host.ts'

/** `size` deterministic pseudo-random bytes: the ChaCha20 keystream under sha256(seed). */
export function bytesOf(size: number, seed: string): Uint8Array {
  const key = createHash('sha256').update(seed).digest()
  return new Uint8Array(createCipheriv('chacha20', key, Buffer.alloc(16)).update(Buffer.alloc(size)))
}

/** A started libp2p host on 127.0.0.1 (TCP only, no mDNS), with a fresh key. */
export async function loopbackHost(): Promise<DonghaeHost> {
  const h = await createHost({
    key: Ed25519KeyPair.generate(),
    host: '127.0.0.1',
    port: 0,
    quic: false,
    webSockets: false,
    mdns: false,
  })
  await h.start()
  return h
}
