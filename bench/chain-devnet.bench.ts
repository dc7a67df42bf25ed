/**
 * Chain throughput across processes: finalized transfers per second on a devnet of 4 validator
 * processes on loopback (libp2p TCP, gossipsub; `donghae devnet --nodes 4`), next to the Ed25519
 * verification ceiling measured in the same run:
 *   ceiling = verifies/s on one core × cores ÷ validators   (every validator verifies every tx once)
 *
 * Load: many pre-signed `bank.transfer`s from many keys funded in the genesis (`--fund`), posted
 * as fast as the nodes take them, each sender's transactions to one node in nonce order, and
 * committed ones counted from node0's blocks (`/v1/chain/blocks/<h>`, polled as the height moves).
 *  - chain-devnet-transfers-single: one transaction a request (`POST /v1/tx`, at most CONCURRENCY
 *    requests in flight); committed bench transfers ÷ (last commit − first submission);
 *  - chain-devnet-transfers: the same with fresh senders, BATCH transactions a request
 *    (`POST /v1/txs`, BATCHES_IN_FLIGHT requests in flight per node) — the figure the target is for;
 *  - chain-devnet-finality: at half that rate (fresh senders; every 20 ms the transactions due
 *    then, one request per node), submission → seen committed on node0 (polled every 20 ms: up to
 *    ~20 ms of sampling error), p50 and p99. DONGHAE_BENCH_FINALITY_TPS=<tx/s> sets the rate
 *    instead (to compare finality at one rate across runs whose maximum differs).
 * The bench process (signing done beforehand, HTTP clients, block polling) runs on the same cores
 * as the four nodes; the nodes' per-address API limit is lifted (DONGHAE_API_RATE_LIMIT). Set DONGHAE_BENCH_CPU_PROF=<dir> to get a V8 CPU profile of every process.
 */
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import { rm } from 'node:fs/promises'
import { toHex } from '../src/core/bytes.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../src/identity/did-key.ts'
import { encodeTx, signTx, txHash } from '../src/chain/tx.ts'
import { startDevnet } from './devnet.bench.ts'
import { ed25519VerifyRate, line, type BenchLine, type MeasureOptions } from './harness.ts'

export const CHAIN_DEVNET_BENCH_NAMES = [
  'chain-devnet-ceiling',
  'chain-devnet-transfers-single',
  'chain-devnet-transfers',
  'chain-devnet-finality',
]

const VALIDATORS = 4
const CONCURRENCY = 64
const BATCH = 256
const BATCHES_IN_FLIGHT = 2

/** DONGHAE_BENCH_FINALITY_TPS: the finality phase's rate in tx/s instead of half the measured one. */
function finalityRate(): number | undefined {
  const raw = process.env.DONGHAE_BENCH_FINALITY_TPS
  if (raw === undefined || raw === '') return undefined
  const rate = Number(raw)
  if (!Number.isFinite(rate) || rate <= 0)
    throw new Error(`DONGHAE_BENCH_FINALITY_TPS must be a positive number of tx/s, got ${JSON.stringify(raw)}`)
  return rate
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function json<T>(url: string, init?: RequestInit, timeoutMs = 10_000): Promise<T | undefined> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) })
    if (res.ok || res.status === 202) return (await res.json()) as T
    await res.body?.cancel()
    return undefined
  } catch {
    return undefined
  }
}

interface Load {
  /** Encoded transactions, per sender in nonce order. */
  bySender: Uint8Array[][]
}

function signLoad(senders: Ed25519KeyPair[], perSender: number, chainId: string, to: string): Load {
  return {
    bySender: senders.map((s) =>
      Array.from({ length: perSender }, (_, n) =>
        encodeTx(signTx(s, { chainId, nonce: BigInt(n), fee: 1n, kind: 'bank.transfer', body: { to, amount: 1n } })),
      ),
    ),
  }
}

/** Watches node0's committed blocks: calls `onTx(hashHex, seenAt)` for every transaction in each new block. */
function watchBlocks(api: string, onTx: (hash: string, at: number) => void): { stop(): Promise<void> } {
  let running = true
  let next = -1
  const loop = (async () => {
    while (running) {
      const status = await json<{ height: number }>(`${api}/v1/status`)
      const height = status?.height ?? -1
      if (next < 0) next = height + 1
      while (running && next <= height) {
        const block = await json<{ txs: Array<{ hash: string }> }>(`${api}/v1/chain/blocks/${next}`)
        if (block === undefined) break
        const at = performance.now()
        for (const tx of block.txs) onTx(tx.hash, at)
        next++
      }
      await sleep(20)
    }
  })()
  return {
    async stop() {
      running = false
      await loop
    },
  }
}

async function post(api: string, bytes: Uint8Array): Promise<boolean> {
  return (
    (await json(`${api}/v1/tx`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tx: toHex(bytes) }),
    })) !== undefined
  )
}

/**
 * POST /v1/txs: how many were admitted, and those refused because the mempool was full (503
 * `full`: the client sends them again once blocks have made room). A failed request admits none.
 */
async function postMany(
  api: string,
  txs: Uint8Array[],
): Promise<{ accepted: number; full: Uint8Array[]; reasons: Map<string, number> }> {
  // a node admits every other node's transactions too: under full load a batch takes seconds
  const res = await json<{
    accepted: number
    results: Array<{ status?: number; error?: { code: string; reason?: string } }>
  }>(
    `${api}/v1/txs`,
    { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ txs: txs.map(toHex) }) },
    120_000,
  )
  const reasons = new Map<string, number>()
  if (res === undefined) reasons.set('request failed', txs.length)
  for (const r of res?.results ?? [])
    if (r.error !== undefined)
      reasons.set(r.error.reason ?? r.error.code, (reasons.get(r.error.reason ?? r.error.code) ?? 0) + 1)
  return {
    accepted: res?.accepted ?? 0,
    full: txs.filter((_, i) => res?.results[i]?.status === 503),
    reasons,
  }
}

export async function chainDevnetBenches(options: MeasureOptions, quick = false): Promise<BenchLine[]> {
  const m = ed25519VerifyRate(options)
  const cores = availableParallelism()
  const ceiling = (m.perSecond * cores) / VALIDATORS
  const burstSenders = quick ? 16 : 200
  const perSender = quick ? 10 : 50
  const batchedSenders = quick ? 32 : 400
  const steadySenders = quick ? 16 : 200
  const steadyPerSender = quick ? 60 : 60
  const steadyMs = quick ? 3_000 : 10_000
  const did = (k: Ed25519KeyPair): string => didFromEd25519PublicKey(k.publicKey)
  const keys = (n: number): Ed25519KeyPair[] => Array.from({ length: n }, () => Ed25519KeyPair.generate())
  const burstKeys = keys(burstSenders)
  const batchedKeys = keys(batchedSenders)
  const steadyKeys = keys(steadySenders)
  const warmKeys = keys(8)
  const recipient = did(Ed25519KeyPair.generate())
  const fund = [...burstKeys, ...batchedKeys, ...steadyKeys, ...warmKeys].flatMap((k) => [
    '--fund',
    `${did(k)}:1000000000`,
  ])
  const profDir = process.env.DONGHAE_BENCH_CPU_PROF
  // one client address posts everything: lift the API's per-address limit (1 200 a minute)
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DONGHAE_API_RATE_LIMIT: '10000000',
    ...(profDir === undefined
      ? {}
      : { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${profDir}` }),
  }
  const {
    dir,
    devnet,
    info: started,
  } = await startDevnet('donghae-bench-chain-devnet-', 10_000 + Math.floor(Math.random() * 400) * 8, fund, env)
  try {
    const info = await started
    const apis = info.nodes.map((n) => n.api)
    const status = (await json<{ chainId: string }>(`${apis[0]}/v1/status`)) as { chainId: string }
    const chainId = status.chainId
    const burst = signLoad(burstKeys, perSender, chainId, recipient)
    const batched = signLoad(batchedKeys, perSender, chainId, recipient)
    const steadyAll = signLoad(steadyKeys, steadyPerSender, chainId, recipient)
    const warm = signLoad(warmKeys, 10, chainId, recipient)
    const committed = new Map<string, number>()
    const watcher = watchBlocks(apis[0] as string, (hash, at) => committed.set(hash, at))
    const submitAll = async (load: Uint8Array[][]): Promise<{ accepted: number; rejected: number }> => {
      let accepted = 0
      let rejected = 0
      // each sender's transactions go to one node, in nonce order; CONCURRENCY senders at a time
      let nextSender = 0
      const worker = async (): Promise<void> => {
        for (let s = nextSender++; s < load.length; s = nextSender++) {
          const api = apis[s % apis.length] as string
          for (const bytes of load[s] as Uint8Array[]) {
            if (await post(api, bytes)) accepted++
            else rejected++
          }
        }
      }
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, load.length) }, worker))
      return { accepted, rejected }
    }
    const submitBatched = async (load: Uint8Array[][]): Promise<{ accepted: number; rejected: number }> => {
      // each node gets its senders' transactions in nonce order (all senders' first ones, then
      // their second ones…), BATCH to a request, BATCHES_IN_FLIGHT requests at a time
      let accepted = 0
      const perNode = apis.map((api, node) => {
        const mine = load.filter((_, s) => s % apis.length === node)
        const order: Uint8Array[] = []
        for (let n = 0; n < (mine[0]?.length ?? 0); n++) for (const txs of mine) order.push(txs[n] as Uint8Array)
        const worker = async (): Promise<void> => {
          while (order.length > 0) {
            const result = await postMany(api, order.splice(0, BATCH))
            accepted += result.accepted
            if (result.full.length === 0) continue
            order.push(...result.full) // the mempool is full: again after the next blocks
            await sleep(100)
          }
        }
        return Promise.all(Array.from({ length: BATCHES_IN_FLIGHT }, worker))
      })
      await Promise.all(perNode)
      const total = load.reduce((sum, txs) => sum + txs.length, 0)
      return { accepted, rejected: total - accepted }
    }
    const waitFor = async (hashes: string[], timeoutMs: number): Promise<void> => {
      const end = performance.now() + timeoutMs
      while (performance.now() < end && hashes.some((h) => !committed.has(h))) await sleep(50)
    }
    const measureBurst = async (
      load: Load,
      submit: (load: Uint8Array[][]) => Promise<{ accepted: number; rejected: number }>,
    ): Promise<{ tps: number; committed: number; accepted: number; rejected: number; submittedPerSecond: number }> => {
      const hashes = load.bySender.flat().map((b) => toHex(txHash(b)))
      const start = performance.now()
      const submitted = await submit(load.bySender)
      const submitSeconds = (performance.now() - start) / 1000
      await waitFor(hashes, 120_000)
      const times = hashes.map((h) => committed.get(h)).filter((t): t is number => t !== undefined)
      const last = Math.max(...times)
      return {
        tps: times.length / ((last - start) / 1000),
        committed: times.length,
        accepted: submitted.accepted,
        rejected: submitted.rejected,
        submittedPerSecond: Math.round(submitted.accepted / submitSeconds),
      }
    }
    // Warm-up: first blocks, JIT, connections.
    await submitAll(warm.bySender)
    await waitFor(
      warm.bySender.flat().map((b) => toHex(txHash(b))),
      60_000,
    )
    // Max load, one transaction a request, then BATCH a request.
    const single = await measureBurst(burst, submitAll)
    const many = await measureBurst(batched, submitBatched)
    const tps = many.tps
    // Half that load (or DONGHAE_BENCH_FINALITY_TPS), paced: every 20 ms, the transactions due by
    // then (senders in turn), one request per node.
    const fixedRate = finalityRate()
    const rate = fixedRate ?? Math.max(1, tps / 2)
    const order: Uint8Array[] = []
    for (let n = 0; n < steadyPerSender; n++) for (const txs of steadyAll.bySender) order.push(txs[n] as Uint8Array)
    const senderOf = new Map<Uint8Array, number>()
    steadyAll.bySender.forEach((txs, s) => txs.forEach((b) => senderOf.set(b, s)))
    const count = Math.min(order.length, Math.round((rate * steadyMs) / 1000))
    const sentAt = new Map<string, number>()
    const inflight: Array<Promise<{ reasons: Map<string, number> }>> = []
    const t0 = performance.now()
    let sent = 0
    while (sent < count) {
      const due = Math.min(count, Math.floor(((performance.now() - t0) / 1000) * rate) + 1)
      const byNode = apis.map((): Uint8Array[] => [])
      for (; sent < due; sent++) {
        const bytes = order[sent] as Uint8Array
        sentAt.set(toHex(txHash(bytes)), performance.now())
        byNode[(senderOf.get(bytes) as number) % apis.length]?.push(bytes)
      }
      byNode.forEach((txs, node) => {
        for (let i = 0; i < txs.length; i += BATCH)
          inflight.push(postMany(apis[node] as string, txs.slice(i, i + BATCH)))
      })
      await sleep(20)
    }
    // why any of the paced transactions was refused (none is expected)
    const refused: Record<string, number> = {}
    for (const { reasons } of await Promise.all(inflight))
      for (const [why, n] of reasons) refused[why] = (refused[why] ?? 0) + n
    await waitFor([...sentAt.keys()], 60_000)
    await watcher.stop()
    const latencies = [...sentAt]
      .map(([h, at]) => (committed.get(h) ?? Number.NaN) - at)
      .filter((x) => !Number.isNaN(x))
      .sort((a, b) => a - b)
    const ratio = tps / ceiling
    const p50 = percentile(latencies, 50)
    const counts = (b: typeof single): Record<string, number> => ({
      committed: b.committed,
      accepted: b.accepted,
      rejected: b.rejected,
      submittedPerSecond: b.submittedPerSecond,
    })
    return [
      line({
        bench: 'chain-devnet-ceiling',
        impl: `node:crypto verify/s × ${cores} cores ÷ ${VALIDATORS} validators`,
        value: ceiling,
        unit: 'tx/s',
        rounds: m.rounds.map((r) => (r * cores) / VALIDATORS),
      }),
      {
        ...line({
          bench: 'chain-devnet-transfers-single',
          impl: `${VALIDATORS} node processes, libp2p on loopback; ${burst.bySender.flat().length} transfers from ${burstSenders} senders, one a request (POST /v1/tx), committed on node0`,
          value: single.tps,
          unit: 'tx/s',
          baseline: { impl: 'chain-devnet-ceiling', value: ceiling },
          rounds: [single.tps],
        }),
        ...counts(single),
      } as BenchLine,
      {
        ...line({
          bench: 'chain-devnet-transfers',
          impl: `${VALIDATORS} node processes, libp2p on loopback; ${batched.bySender.flat().length} transfers from ${batchedSenders} senders, ${BATCH} a request (POST /v1/txs), committed on node0`,
          value: tps,
          unit: 'tx/s',
          baseline: { impl: 'chain-devnet-ceiling', value: ceiling },
          target: { value: 0.5, met: ratio >= 0.5, note: 'ratio to the verify ceiling' },
          rounds: [tps],
        }),
        ...counts(many),
      } as BenchLine,
      {
        ...line({
          bench: 'chain-devnet-finality',
          impl: `${VALIDATORS} node processes at ${fixedRate === undefined ? 'half the measured rate' : 'a fixed rate (DONGHAE_BENCH_FINALITY_TPS)'} (${Math.round(rate)} tx/s): POST /v1/txs every 20 ms → committed on node0, p50`,
          value: p50,
          unit: 'ms',
          target: {
            value: 500,
            met: p50 <= 500 && rate >= tps / 2,
            note: 'finality p50 ≤ 500 ms at half the max load (a fixed rate below that meets nothing)',
          },
          rounds: [p50],
        }),
        p99: Math.round(percentile(latencies, 99)),
        samples: latencies.length,
        offered: count,
        refused,
      } as BenchLine,
    ]
  } finally {
    devnet.kill('SIGINT')
    await new Promise((r) => (devnet.exitCode !== null ? r(null) : devnet.once('exit', r)))
    await rm(dir, { recursive: true, force: true })
  }
}

if (import.meta.main === true) {
  for (const l of await chainDevnetBenches({ roundMs: 300, rounds: 3 }, process.argv.includes('--quick')))
    process.stdout.write(`${JSON.stringify(l)}\n`)
}
