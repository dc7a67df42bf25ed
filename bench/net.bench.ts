/**
 * Network scale (src/net/sim):
 *  - `dht-lookup`: real js-libp2p nodes in one process over @libp2p/memory (Noise, Yamux, kad-dht
 *    under /donghae/kad/1.0.0, gossipsub): `get` of values put by other random nodes; value = p50
 *    ms until the call returns, with p99, mean, hops and success, against hivemind's reported
 *    6.6 ms mean get at 1,024 peers (an outside figure, not measured here);
 *  - `dht-find-peer`: `findPeer` of random nodes in the same network (`useCache: false`);
 *  - `gossip-propagation`: value = p99 ms from publish to each node's `message` event, with p50 and
 *    the delivery ratio;
 *  - `dht-lookup-model`: the Kademlia routing model (NOT libp2p: simulated tables and a 25 ms mean
 *    one-way latency) at 500 and 1,000 nodes: 500 real nodes do run here, but take about 25 minutes.
 * One run each (a network this size is too slow to repeat), so `rounds` holds the one figure.
 * Quick mode (the smoke test) runs 10 libp2p nodes and the model at 500. `--nodes N` sets the
 * libp2p network's size: `node bench/run.ts --only dht --nodes 500` is the 500-node run.
 */
import {
  runKademliaModel,
  runScaleSimulation,
  type KademliaModelResult,
  type LookupStats,
  type ScaleResult,
} from '../src/net/sim/index.ts'
import { line, type BenchLine, type MeasureOptions } from './harness.ts'

export const NET_BENCH_NAMES = ['dht-lookup', 'dht-find-peer', 'gossip-propagation', 'dht-lookup-model']

/**
 * Largest libp2p network the full bench runs in a few minutes: on the 2-core development machine
 * 150 nodes take about 4 minutes (joining and warm-up dominate); `--nodes 500` runs the 500-node
 * network of src/net/sim/README.md (about 28 minutes).
 */
export const NET_BENCH_NODES = 150

/** A bench line with the extra figures of these benches (p99, hops, anchor, ...). */
type NetBenchLine = BenchLine & Record<string, unknown>

const SEED = 1
const HIVEMIND = { hivemindMeanMs: 6.6, peers: 1024 }

function lookupFields(stats: LookupStats) {
  return {
    p50: stats.latencyMs.p50,
    p99: stats.latencyMs.p99,
    mean: stats.latencyMs.mean,
    hopsP50: stats.hops.p50,
    hopsP99: stats.hops.p99,
    queriedMean: stats.queried.mean,
    success: stats.successRate,
    lookups: stats.attempted,
  }
}

function libp2pLines(result: ScaleResult): NetBenchLine[] {
  const where = `${result.nodes} nodes, @libp2p/memory (${result.transport.latencyMs} ms) + ${result.encryption}, k=${result.dht.k} α=${result.dht.alpha}`
  const common = {
    kind: result.kind,
    nodes: result.nodes,
    seed: result.seed,
    rssPeakMiB: Math.round(result.memory.rssPeakBytes / 2 ** 20),
  }
  const get = result.getValue
  return [
    {
      ...line({
        bench: 'dht-lookup',
        impl: `js-libp2p kad-dht get, ${where}`,
        value: get.latencyMs.p50,
        unit: 'ms',
        rounds: [get.latencyMs.p50],
      }),
      ...common,
      ...lookupFields(get),
      firstValueP50: get.firstValueMs.p50,
      unstored: get.unstored,
      anchor: { ...HIVEMIND, ratioOfMeans: Number((get.latencyMs.mean / HIVEMIND.hivemindMeanMs).toFixed(2)) },
    },
    {
      ...line({
        bench: 'dht-find-peer',
        impl: `js-libp2p kad-dht findPeer, ${where}`,
        value: result.findPeer.latencyMs.p50,
        unit: 'ms',
        rounds: [result.findPeer.latencyMs.p50],
      }),
      ...common,
      ...lookupFields(result.findPeer),
    },
    {
      ...line({
        bench: 'gossip-propagation',
        impl: `js-libp2p gossipsub, ${where}`,
        value: result.gossip.latencyMs.p99,
        unit: 'ms',
        rounds: [result.gossip.latencyMs.p99],
      }),
      ...common,
      p50: result.gossip.latencyMs.p50,
      p99: result.gossip.latencyMs.p99,
      delivery: result.gossip.deliveryRatio,
      messages: result.gossip.messages,
      meshPeersP50: result.gossip.meshPeersPerNode.p50,
    },
  ]
}

function modelLine(result: KademliaModelResult): NetBenchLine {
  const get = result.getValue
  return {
    ...line({
      bench: 'dht-lookup-model',
      impl: `Kademlia model (not libp2p), ${result.nodes} nodes, ${result.table} tables, k=${result.k} α=${result.alpha}, ${result.latency.meanOneWayMs} ms mean one-way`,
      value: get.latencyMs.p50,
      unit: 'ms',
      rounds: [get.latencyMs.p50],
    }),
    kind: result.kind,
    nodes: result.nodes,
    seed: result.seed,
    ...lookupFields(get),
    findPeerP50: result.findPeer.latencyMs.p50,
    findPeerHopsP50: result.findPeer.hops.p50,
    findPeerHopsP99: result.findPeer.hops.p99,
    routingTableMean: result.routingTablePerNode.mean,
  }
}

/** `nodes` (`--nodes`) sizes the libp2p run, in quick mode too; the model keeps its sizes. */
export async function netBenches(_options: MeasureOptions, quick: boolean, nodes?: number): Promise<NetBenchLine[]> {
  const result = await runScaleSimulation(
    quick
      ? { nodes: nodes ?? 10, seed: SEED, lookups: 5, messages: 3, warmup: false }
      : { nodes: nodes ?? NET_BENCH_NODES, seed: SEED, lookups: 50, messages: 20 },
  )
  const models = (quick ? [500] : [500, 1000]).map((nodes) =>
    runKademliaModel({ nodes, seed: SEED, lookups: quick ? 50 : 200 }),
  )
  return [...libp2pLines(result), ...models.map(modelLine)]
}
