/**
 * A worker process of the multi-process scale simulation (processes.ts forks it): it hosts some of
 * the network's nodes, listening on TCP on 127.0.0.1, and runs what the parent asks of them over
 * the IPC channel (structured clone). Requests are `{ id, op, args }`; each gets `{ id, result }` or
 * `{ id, error }`. It prints nothing, and exits when the parent closes the channel (after `stop`)
 * or goes away.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import {
  createSimNode,
  findPeerOp,
  getOp,
  type GetImpl,
  holdsRecord,
  putOp,
  routingTableSize,
  warmUpLookup,
  type NodeConfig,
  type SimNode,
} from './node.ts'

export type WorkerRequest =
  | { id: number; op: 'init'; args: { config: NodeConfig } }
  | { id: number; op: 'start'; args: { index: number; keySeed: Uint8Array } }
  | { id: number; op: 'dial'; args: { index: number; address: string } }
  | { id: number; op: 'warm'; args: { index: number; key?: Uint8Array } }
  | { id: number; op: 'stats'; args: Record<string, never> }
  | { id: number; op: 'findPeer'; args: { index: number; target: string } }
  | { id: number; op: 'put'; args: { index: number; key: Uint8Array; value: Uint8Array } }
  | { id: number; op: 'get'; args: { index: number; key: Uint8Array; value: Uint8Array; impl: GetImpl } }
  | { id: number; op: 'holds'; args: { indexes: number[]; key: Uint8Array } }
  | { id: number; op: 'stop'; args: Record<string, never> }

export type WorkerReply = { id: number; result: unknown } | { id: number; error: string }

/** What `stats` answers: per hosted node, in the order they were started. */
export interface WorkerStats {
  indexes: number[]
  routingTable: number[]
  connections: number[]
  /** Connections opened (counted at both ends) since the nodes started. */
  connectionsOpened: number
  rssBytes: number
  heapUsedBytes: number
}

const nodes = new Map<number, SimNode>()
let config: NodeConfig | undefined
let connectionsOpened = 0
const countOpen = (): void => void connectionsOpened++

function nodeAt(index: number): SimNode {
  const node = nodes.get(index)
  if (node === undefined) throw new Error(`node ${index} is not hosted here`)
  return node
}

function configured(): NodeConfig {
  if (config === undefined) throw new Error('worker not initialised')
  return config
}

async function handle(request: WorkerRequest): Promise<unknown> {
  switch (request.op) {
    case 'init':
      config = request.args.config
      return null
    case 'start': {
      const node = await createSimNode(configured(), request.args.keySeed, '/ip4/127.0.0.1/tcp/0')
      node.addEventListener('connection:open', countOpen)
      nodes.set(request.args.index, node)
      const address = node.getMultiaddrs()[0]
      if (address === undefined) throw new Error(`node ${request.args.index} has no listen address`)
      return { peerId: node.peerId.toString(), address: address.toString() }
    }
    case 'dial':
      await nodeAt(request.args.index).dial(multiaddr(request.args.address), { signal: AbortSignal.timeout(10_000) })
      return null
    case 'warm':
      return await warmUpLookup(nodeAt(request.args.index), configured(), request.args.key)
    case 'stats': {
      const indexes = [...nodes.keys()]
      const memory = process.memoryUsage()
      const stats: WorkerStats = {
        indexes,
        routingTable: indexes.map((i) => routingTableSize(nodeAt(i))),
        connections: indexes.map((i) => nodeAt(i).getConnections().length),
        connectionsOpened,
        rssBytes: memory.rss,
        heapUsedBytes: memory.heapUsed,
      }
      return stats
    }
    case 'findPeer':
      return await findPeerOp(nodeAt(request.args.index), peerIdFromString(request.args.target), configured())
    case 'put':
      return await putOp(nodeAt(request.args.index), request.args.key, request.args.value, configured())
    case 'get':
      return await getOp(
        nodeAt(request.args.index),
        request.args.key,
        request.args.value,
        configured(),
        undefined,
        request.args.impl,
      )
    case 'holds':
      return await Promise.all(request.args.indexes.map((i) => holdsRecord(nodeAt(i), request.args.key)))
    case 'stop':
      await Promise.allSettled([...nodes.values()].map((node) => node.stop()))
      nodes.clear()
      return null
  }
}

/** Answers the parent, unless it has gone (then the `disconnect` handler below ends this process). */
function reply(message: WorkerReply): void {
  if (process.connected) process.send?.(message)
}

process.on('message', (request: WorkerRequest) => {
  handle(request).then(
    (result) => reply({ id: request.id, result }),
    (err: unknown) =>
      reply({ id: request.id, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }),
  )
})
// a send racing the parent's exit fails with ERR_IPC_CHANNEL_CLOSED: nothing to answer any more
process.on('error', () => {})
// the parent died or closed the channel: nothing left to do
process.on('disconnect', () => {
  void Promise.allSettled([...nodes.values()].map((node) => node.stop())).then(() => process.exit(0))
})
