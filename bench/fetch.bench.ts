/**
 * Model fetch throughput (issue 11): a file fetched over bitswap into a content store from three
 * peers that have it, against the same file from one peer, in the same run. Every node is its own
 * process (test/helpers/content-node.ts: the node's libp2p host on TCP 127.0.0.1 and a
 * `ContentStore`), so the figure includes noise, yamux, bitswap framing, hashing every block and
 * writing it to disk. One line, `model-fetch-3-peers`: MB/s from three peers, the one-peer MB/s as
 * its baseline, their ratio, and `cores` — on a machine with fewer cores than processes (four
 * here), three senders share the CPU with the fetcher and the ratio says more about the CPU than
 * the network.
 *
 *   node bench/run.ts --only fetch
 */
import { cpus } from 'node:os'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ContentProc } from '../test/helpers/content-procs.ts'
import { line, type BenchLine } from './harness.ts'

export const FETCH_BENCH_NAMES = ['model-fetch-3-peers']
const MB = 1_000_000

/** MB/s of one fetch of `cid` by a new node connected to `seeds`. */
async function fetchOnce(dir: string, name: string, seeds: ContentProc[], cid: string): Promise<number> {
  const fetcher = await ContentProc.start(join(dir, name))
  try {
    for (const seed of seeds) await fetcher.dial(seed)
    const result = await fetcher.fetch(cid)
    if (Object.keys(result.fromPeers).length !== seeds.length && seeds.length > 1 && result.blocks > 8)
      process.stderr.write(
        `fetch bench: blocks came from ${Object.keys(result.fromPeers).length} of ${seeds.length} peers\n`,
      )
    return result.fetchedBytes / MB / (result.ms / 1000)
  } finally {
    await fetcher.stop()
  }
}

export async function fetchBenches(quick = false): Promise<BenchLine[]> {
  const size = (quick ? 4 : 128) * MB
  const rounds = quick ? 1 : 2
  const dir = await mkdtemp(join(tmpdir(), 'donghae-fetch-bench-'))
  const seeds: ContentProc[] = []
  try {
    seeds.push(...(await Promise.all([0, 1, 2].map((i) => ContentProc.start(join(dir, `seed${i}`))))))
    // the same bytes on each seed: the same CID
    const added = await Promise.all(seeds.map((seed) => seed.generate(size, 'fetch-bench')))
    const cid = added[0]?.cid as string
    if (added.some((a) => a.cid !== cid)) throw new Error('the seeds gave one file different CIDs')
    const one: number[] = []
    const three: number[] = []
    for (let r = 0; r < rounds; r++) {
      one.push(await fetchOnce(dir, `one${r}`, seeds.slice(0, 1), cid))
      three.push(await fetchOnce(dir, `three${r}`, seeds, cid))
    }
    const cores = cpus().length
    return [
      {
        ...line({
          bench: 'model-fetch-3-peers',
          impl: `ContentStore.fetch of a ${size / MB} MB file from 3 peers (bitswap, one process per node, TCP 127.0.0.1), best of ${rounds}`,
          value: Math.max(...three),
          unit: 'MB/s',
          baseline: { impl: 'the same file from 1 peer', value: Math.max(...one) },
          rounds: three,
        }),
        cores,
      } as BenchLine,
    ]
  } finally {
    await Promise.all(seeds.map((seed) => seed.stop()))
    await rm(dir, { recursive: true, force: true })
  }
}
