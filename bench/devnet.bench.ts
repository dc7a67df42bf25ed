/**
 * Block propagation and finality over real sockets: a devnet of 4 validator processes on
 * loopback (libp2p TCP/QUIC, gossipsub), observed through their HTTP APIs.
 *  - propagation: for each new height, the time between the first and the last node reporting it
 *    (APIs polled every 20 ms, so figures carry up to ~20 ms of sampling error);
 *  - finality: a transfer submitted to one node until that node reports it committed;
 *  - block interval from the block headers' times.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { toHex } from '../src/core/bytes.ts'
import { loadKeystore } from '../src/identity/keystore.ts'
import { didFromEd25519PublicKey } from '../src/identity/did-key.ts'
import { encodeTx, signTx } from '../src/chain/tx.ts'
import { line, type BenchLine, type MeasureOptions } from './harness.ts'

export const DEVNET_BENCH_NAMES = ['devnet-propagation', 'devnet-finality', 'devnet-block-interval']
const BIN = fileURLToPath(new URL('../bin/donghae.js', import.meta.url))
const PASSWORD = 'donghae-localnet-insecure'

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0
}

async function json<T>(url: string, init?: RequestInit): Promise<T | undefined> {
  try {
    const res = await fetch(url, init)
    return res.ok || res.status === 202 ? ((await res.json()) as T) : undefined
  } catch {
    return undefined
  }
}

/** `donghae devnet --nodes 4 --json` in a new directory, and its node table once it printed it. */
export async function startDevnet(
  prefix: string,
  base: number,
  extraArgs: readonly string[] = [],
  env?: NodeJS.ProcessEnv,
): Promise<{ dir: string; devnet: ChildProcess; info: Promise<{ nodes: Array<{ api: string; home: string }> }> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  const devnet: ChildProcess = spawn(
    process.execPath,
    [BIN, '--home', dir, 'devnet', '--nodes', '4', '--base-port', String(base), '--json', ...extraArgs],
    { stdio: ['ignore', 'pipe', 'ignore'], ...(env === undefined ? {} : { env }) },
  )
  const info = new Promise<{ nodes: Array<{ api: string; home: string }> }>((resolve, reject) => {
    let buffer = ''
    devnet.stdout?.setEncoding('utf8').on('data', (c: string) => {
      buffer += c
      const l = buffer.split('\n').find((x) => x.startsWith('{'))
      if (l !== undefined) resolve(JSON.parse(l) as never)
    })
    devnet.once('exit', () => reject(new Error('devnet exited before it ran')))
  })
  return { dir, devnet, info }
}

export async function devnetBenches(_options: MeasureOptions, quick = false): Promise<BenchLine[]> {
  // below the ephemeral range (32768+)
  const {
    dir,
    devnet,
    info: started,
  } = await startDevnet('donghae-bench-devnet-', 10_000 + Math.floor(Math.random() * 400) * 8)
  try {
    const info = await started
    const apis = info.nodes.map((n) => n.api)
    const heightOf = async (api: string): Promise<number> =>
      (await json<{ height: number }>(`${api}/v1/status`))?.height ?? -1
    while (Math.min(...(await Promise.all(apis.map(heightOf)))) < 3) await new Promise((r) => setTimeout(r, 100))
    // Propagation: watch heights on every node.
    const seen = new Map<number, number[]>()
    const duration = quick ? 3_000 : 15_000
    const end = performance.now() + duration
    while (performance.now() < end) {
      const now = performance.now()
      const heights = await Promise.all(apis.map(heightOf))
      heights.forEach((h) => {
        const times = seen.get(h) ?? []
        times.push(now)
        seen.set(h, times)
      })
      await new Promise((r) => setTimeout(r, 20))
    }
    const spreads: number[] = []
    for (const times of seen.values())
      if (times.length >= apis.length)
        spreads.push(Math.max(...times.slice(0, apis.length)) - Math.min(...times.slice(0, apis.length)))
    // Finality: transfers from node0's key, each to its own node, one at a time.
    const key = await loadKeystore(join(info.nodes[0]?.home as string, 'keystore.json'), PASSWORD)
    const status = (await json<{ chainId: string }>(`${apis[0]}/v1/status`)) as { chainId: string }
    const account = (await json<{ nonce: string }>(
      `${apis[0]}/v1/accounts/${didFromEd25519PublicKey(key.publicKey)}`,
    )) as { nonce: string }
    const finality: number[] = []
    const count = quick ? 3 : 20
    for (let i = 0; i < count; i++) {
      const tx = encodeTx(
        signTx(key, {
          chainId: status.chainId,
          nonce: BigInt(account.nonce) + BigInt(i),
          fee: 1n,
          kind: 'bank.transfer',
          body: { to: didFromEd25519PublicKey(key.publicKey), amount: 1n },
        }),
      )
      const api = apis[i % apis.length] as string
      const start = performance.now()
      const submitted = await json<{ hash: string }>(`${api}/v1/tx`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tx: toHex(tx) }),
      })
      if (submitted === undefined) throw new Error('submission failed')
      while ((await json(`${api}/v1/tx/${submitted.hash}`)) === undefined) await new Promise((r) => setTimeout(r, 10))
      finality.push(performance.now() - start)
    }
    const top = await heightOf(apis[0] as string)
    const times: number[] = []
    for (let h = Math.max(1, top - 30); h <= top; h++) {
      const block = await json<{ header: { time: number } }>(`${apis[0]}/v1/chain/blocks/${h}`)
      if (block !== undefined) times.push(block.header.time)
    }
    const intervals = times
      .slice(1)
      .map((t, i) => t - (times[i] as number))
      .sort((a, b) => a - b)
    spreads.sort((a, b) => a - b)
    finality.sort((a, b) => a - b)
    const extra = (values: number[]): Record<string, number> => ({
      p50: Math.round(percentile(values, 50)),
      p99: Math.round(percentile(values, 99)),
      samples: values.length,
    })
    return [
      {
        ...line({
          bench: 'devnet-propagation',
          impl: '4 processes, libp2p gossipsub on loopback; first→last node to report a height, p50',
          value: percentile(spreads, 50),
          unit: 'ms',
          rounds: [percentile(spreads, 50)],
        }),
        ...extra(spreads),
      } as BenchLine,
      {
        ...line({
          bench: 'devnet-finality',
          impl: '4 processes; POST /v1/tx → committed on that node, p50',
          value: percentile(finality, 50),
          unit: 'ms',
          target: { value: 1000, met: percentile(finality, 50) <= 1000, note: 'finality p50 ≤ 1 s' },
          rounds: [percentile(finality, 50)],
        }),
        ...extra(finality),
      } as BenchLine,
      {
        ...line({
          bench: 'devnet-block-interval',
          impl: '4 processes; header time deltas, p50',
          value: percentile(intervals, 50),
          unit: 'ms',
          rounds: [percentile(intervals, 50)],
        }),
        ...extra(intervals),
      } as BenchLine,
    ]
  } finally {
    devnet.kill('SIGINT')
    await new Promise((r) => (devnet.exitCode !== null ? r(null) : devnet.once('exit', r)))
    await rm(dir, { recursive: true, force: true })
  }
}

if (import.meta.main === true) {
  for (const l of await devnetBenches({}, process.argv.includes('--quick')))
    process.stdout.write(`${JSON.stringify(l)}\n`)
}
