import { runKademliaModel } from './kademlia-model.ts'
for (const nodes of [50, 500, 1000])
  for (const table of ['kademlia', 'libp2p-trie'] as const) {
    const r = runKademliaModel({ nodes, seed: 7, lookups: 200, table })
    console.log(
      nodes,
      table,
      r.durationMs,
      'ms',
      JSON.stringify({
        rt: r.routingTablePerNode.mean,
        fp: [
          r.findPeer.successRate,
          r.findPeer.latencyMs.p50,
          r.findPeer.latencyMs.p99,
          r.findPeer.hops.p50,
          r.findPeer.hops.p99,
          r.findPeer.queried.mean,
        ],
        gv: [
          r.getValue.successRate,
          r.getValue.latencyMs.p50,
          r.getValue.latencyMs.p99,
          r.getValue.hops.p50,
          r.getValue.hops.p99,
          r.getValue.convergedMs.p50,
        ],
      }),
    )
  }
