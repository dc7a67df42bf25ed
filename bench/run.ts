/**
 * `npm run bench`: runs every benchmark and prints one JSON object per line.
 * Options: --round-ms N (default 300), --rounds N (default 5), --only NAME (substring of a bench name),
 * --nodes N (libp2p nodes of the network-scale run, default NET_BENCH_NODES = 150; see bench/README.md).
 */
import { parseArgs } from 'node:util'
import { cryptoBenches } from './crypto.bench.ts'
import { verifyPoolBenches, VERIFY_POOL_BENCH_NAMES } from './verify-pool.bench.ts'
import { chainBenches, CHAIN_BENCH_NAMES } from './chain.bench.ts'
import { mempoolBenches, MEMPOOL_BENCH_NAMES } from './mempool.bench.ts'
import { devnetBenches, DEVNET_BENCH_NAMES } from './devnet.bench.ts'
import { chainDevnetBenches, CHAIN_DEVNET_BENCH_NAMES } from './chain-devnet.bench.ts'
import { netBenches, NET_BENCH_NAMES, NET_BENCH_NODES } from './net.bench.ts'
import type { BenchLine } from './harness.ts'
import { pohBenches, POH_BENCH_NAMES } from './poh.bench.ts'
import { stateBenches, STATE_BENCH_NAMES } from './state.bench.ts'
import { auditBenches, AUDIT_BENCH_NAMES } from './audit.bench.ts'
import { inferenceBenches, INFERENCE_BENCH_NAMES } from './inference.bench.ts'
import { runnerBenches, RUNNER_BENCH_NAMES } from './runner.bench.ts'
import { fetchBenches, FETCH_BENCH_NAMES } from './fetch.bench.ts'
import { lmBenches, LM_BENCH_NAMES } from './lm.bench.ts'
import { lmGatewayBenches, LM_GATEWAY_BENCH_NAMES } from './lm-gateway.bench.ts'
import { expertsBenches, EXPERTS_BENCH_NAMES } from './experts.bench.ts'
import { moeBenches, MOE_BENCH_NAMES } from './moe.bench.ts'
import { directoryBenches, DIRECTORY_BENCH_NAMES } from './directory.bench.ts'
import { webrtcBenches, WEBRTC_BENCH_NAMES } from './webrtc.bench.ts'
import { webrtcBrowserBenches, WEBRTC_BROWSER_BENCH_NAMES } from './webrtc-browser.bench.ts'
import { walletBenches, WALLET_BENCH_NAMES } from './wallet.bench.ts'
import { flBenches, FL_BENCH_NAMES } from './fl.bench.ts'
import { idleBenches, IDLE_BENCH_NAMES } from './idle.bench.ts'
import { WORKER_RSS_BENCH_NAMES, workerRssBenches } from './worker-rss.bench.ts'
import { costBenches, COST_BENCH_NAMES } from './cost.bench.ts'

const { values } = parseArgs({
  options: {
    'round-ms': { type: 'string', default: '300' },
    rounds: { type: 'string', default: '5' },
    only: { type: 'string' },
    nodes: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
})
if (values.help === true) {
  process.stdout.write(
    [
      'usage: npm run bench -- [--round-ms N] [--rounds N] [--only NAME] [--nodes N]',
      '  --round-ms N  milliseconds per timed round (default 300; under 50 is the quick smoke mode)',
      '  --rounds N    timed rounds per bench (default 5)',
      '  --only NAME   run the benches whose name contains NAME (e.g. dht, gossip, ed25519, runner)',
      `  --nodes N     real libp2p nodes in the network-scale run (dht-lookup, dht-find-peer,`,
      `                gossip-propagation, dht-get-success, ...; default ${NET_BENCH_NODES}); given, only that`,
      '                suite runs. 1,000 nodes took 96 minutes and 11 GB on 2 cores:',
      '                node bench/run.ts --only dht --nodes 1000',
      '',
    ].join('\n'),
  )
  process.exit(0)
}
const options = { roundMs: Number(values['round-ms']), rounds: Number(values.rounds) }
const nodes = values.nodes === undefined ? undefined : Number(values.nodes)
if (nodes !== undefined && !(Number.isInteger(nodes) && nodes >= 4 && nodes <= 5000)) {
  process.stderr.write('bench: --nodes must be an integer 4-5000\n')
  process.exit(2)
}
/** Very short rounds (the smoke test) also shrink the chain bench's load. */
const quick = options.roundMs < 50
if (!(options.roundMs > 0) || !(options.rounds > 0)) {
  process.stderr.write('bench: --round-ms and --rounds must be positive numbers\n')
  process.exit(2)
}
const meta = {
  node: process.versions.node,
  platform: `${process.platform}-${process.arch}`,
  cpus: (await import('node:os')).availableParallelism(),
}
process.stdout.write(`${JSON.stringify({ bench: 'meta', ...meta, when: new Date().toISOString() })}\n`)

/** Every suite: the names of the benches it prints (for --only) and how to run it. */
const SUITES: Array<{ names: readonly string[]; run: () => BenchLine[] | Promise<BenchLine[]> }> = [
  { names: ['ed25519-sign', 'ed25519-verify', 'sha256-chain'], run: () => cryptoBenches(options) },
  { names: VERIFY_POOL_BENCH_NAMES, run: () => verifyPoolBenches(options) },
  { names: STATE_BENCH_NAMES, run: () => stateBenches(options) },
  { names: POH_BENCH_NAMES, run: () => pohBenches(options) },
  { names: CHAIN_BENCH_NAMES, run: () => chainBenches(options, quick ? 0.2 : 1) },
  { names: MEMPOOL_BENCH_NAMES, run: () => mempoolBenches(options, quick) },
  { names: DEVNET_BENCH_NAMES, run: () => devnetBenches(options, quick) },
  { names: CHAIN_DEVNET_BENCH_NAMES, run: () => chainDevnetBenches(options, quick) },
  { names: NET_BENCH_NAMES, run: () => netBenches(options, quick, nodes) },
  { names: AUDIT_BENCH_NAMES, run: () => auditBenches(options, quick) },
  { names: INFERENCE_BENCH_NAMES, run: () => inferenceBenches(options, quick) },
  { names: RUNNER_BENCH_NAMES, run: () => runnerBenches(quick) },
  { names: FETCH_BENCH_NAMES, run: () => fetchBenches(quick) },
  { names: LM_BENCH_NAMES, run: () => lmBenches(quick) },
  { names: LM_GATEWAY_BENCH_NAMES, run: () => lmGatewayBenches(quick) },
  { names: EXPERTS_BENCH_NAMES, run: () => expertsBenches(quick) },
  { names: MOE_BENCH_NAMES, run: () => moeBenches(quick) },
  { names: DIRECTORY_BENCH_NAMES, run: () => directoryBenches(quick) },
  { names: WEBRTC_BENCH_NAMES, run: () => webrtcBenches(quick) },
  { names: WEBRTC_BROWSER_BENCH_NAMES, run: () => webrtcBrowserBenches(quick) },
  { names: WALLET_BENCH_NAMES, run: () => walletBenches(options, quick) },
  { names: FL_BENCH_NAMES, run: () => flBenches(options, quick) },
  { names: IDLE_BENCH_NAMES, run: () => idleBenches(quick) },
  { names: WORKER_RSS_BENCH_NAMES, run: () => workerRssBenches(quick) },
  { names: COST_BENCH_NAMES, run: () => costBenches(quick) },
]

const only = values.only
for (const suite of SUITES) {
  if (only !== undefined && !suite.names.some((name) => name.includes(only))) continue
  // --nodes sizes the network-scale run alone (`--only dht` also names the cost suite's cost-dht-rss-N)
  if (nodes !== undefined && suite.names !== NET_BENCH_NAMES) continue
  for (const result of await suite.run()) {
    if (only !== undefined && !result.bench.includes(only)) continue
    process.stdout.write(`${JSON.stringify(result)}\n`)
  }
}
