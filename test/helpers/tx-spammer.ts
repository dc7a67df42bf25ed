/**
 * An attacker host for the spam tests, run as a child process (so its CPU is not counted as the
 * validators'): a bare libp2p host (bare-host.ts: it talks only to the validator it dials, so
 * every message it publishes goes to that validator) that publishes well-formed,
 * well-signed transactions from fresh keys with no money, offering the largest fee there is,
 * on the chain's transaction topic, as many to a gossip message as a batch holds (tx-batch.ts: the
 * attacker's best use of a message).
 *
 * argv[2] = JSON { target: multiaddr, targetPeer: its PeerId, chainId, count, port }
 * IPC: sends { ready, peerId } once the target takes its gossip, waits for 'go', publishes, sends
 * { done, published (transactions), ms }, and exits on 'stop'.
 */
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../../src/identity/did-key.ts'
import { encodeTx, signTx } from '../../src/chain/tx.ts'
import { TX_TOPIC } from '../../src/chain/runtime.ts'
import { encodeTxBatch, MAX_TX_BATCH } from '../../src/chain/tx-batch.ts'
import { gossipTopic } from '../../src/net/constants.ts'
import { frameGossip } from '../../src/net/gossip.ts'
import { bareHost } from './bare-host.ts'
import { multiaddr } from '@multiformats/multiaddr'

interface Config {
  target: string
  targetPeer: string
  chainId: string
  count: number
  port: number
}

const config = JSON.parse(process.argv[2] ?? '{}') as Config
const send = (msg: unknown): void => void process.send?.(msg)

const recipient = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
const junk = Array.from({ length: config.count }, () =>
  encodeTx(
    signTx(Ed25519KeyPair.generate(), {
      chainId: config.chainId,
      nonce: 0n,
      fee: 2n ** 64n - 1n,
      kind: 'bank.transfer',
      body: { to: recipient, amount: 1n },
    }),
  ),
)

const host = await bareHost(Ed25519KeyPair.generate(), config.port)
await host.start()
const topic = gossipTopic(config.chainId, TX_TOPIC)
const pubsub = host.services.pubsub
pubsub.subscribe(topic)
const target = multiaddr(config.target)
const targetId = config.targetPeer
for (;;) {
  if (host.getConnections().length === 0) await host.dial(target).catch(() => {})
  if (pubsub.getSubscribers(topic).some((p) => p.toString() === targetId)) break
  await new Promise((resolve) => setTimeout(resolve, 50))
}
send({ ready: true, peerId: host.peerId.toString() })

process.on('message', (msg) => {
  if (msg === 'stop') void Promise.resolve(host.stop()).finally(() => process.exit(0))
  if (msg !== 'go') return
  void (async () => {
    const started = performance.now()
    let published = 0
    // As fast as the host can send: full batches, 4 messages in flight.
    const batches: Uint8Array[][] = []
    for (let i = 0; i < junk.length; i += MAX_TX_BATCH) batches.push(junk.slice(i, i + MAX_TX_BATCH))
    for (let i = 0; i < batches.length; i += 4) {
      await Promise.all(
        batches.slice(i, i + 4).map((txs) =>
          pubsub.publish(topic, frameGossip(encodeTxBatch(txs))).then(
            () => (published += txs.length),
            () => {},
          ),
        ),
      )
    }
    send({ done: true, published, ms: performance.now() - started })
  })()
})
