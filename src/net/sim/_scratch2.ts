import { performance } from 'node:perf_hooks'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { memory } from '@libp2p/memory'
import { ping } from '@libp2p/ping'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { gossipsub } from '@libp2p/gossipsub'
import { createLibp2p } from 'libp2p'
const n = Number(process.argv[2] ?? 30)
const mode = process.argv[3] ?? 'full'
const nodes: any[] = []
let tc = 0,
  td = 0
for (let i = 0; i < n; i++) {
  const seed = new Uint8Array(32)
  seed[0] = i
  seed[1] = i >> 8
  const t0 = performance.now()
  const services: any = { identify: identify(), ping: ping() }
  if (mode !== 'bare')
    services.dht = kadDHT({
      protocol: '/donghae/kad/1.0.0',
      clientMode: false,
      alpha: 3,
      peerInfoMapper: passthroughMapper,
      allowQueryWithZeroPeers: true,
    })
  if (mode === 'full') services.pubsub = gossipsub({ allowPublishToZeroTopicPeers: true })
  const node = await createLibp2p({
    privateKey: await generateKeyPairFromSeed('Ed25519', seed),
    addresses: { listen: [`/memory/x-${i}`] },
    transports: [memory()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
    services,
  })
  const t1 = performance.now()
  nodes.push(node)
  if (i > 0) await node.dial(nodes[Math.floor(i / 2)].getMultiaddrs()[0])
  if (i > 1) await node.dial(nodes[i - 1].getMultiaddrs()[0])
  const t2 = performance.now()
  tc += t1 - t0
  td += t2 - t1
}
console.log({ n, mode, createMs: tc / n, dialMs: td / n, rssMiB: process.memoryUsage().rss / 2 ** 20 })
const t = performance.now()
await new Promise((r) => setTimeout(r, 3000))
console.log(
  'conns',
  nodes.reduce((a, x) => a + x.getConnections().length, 0),
  'rss',
  process.memoryUsage().rss / 2 ** 20,
  'cpu',
  process.cpuUsage(),
)
await Promise.all(nodes.map((x) => x.stop()))
