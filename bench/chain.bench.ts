/**
 * Finalized transfers per second and time to finality for four validators in one process (real
 * nodes: LevelDB, consensus engine, PoH, mempool) over the in-memory network with zero delay,
 * next to the Ed25519 verification ceiling measured in the same run:
 *   ceiling = verifies/s on one core × cores ÷ validators   (every validator verifies every tx once)
 * Targets: ≥ 50 % of the ceiling; finality p50 ≤ 1 s.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir, availableParallelism } from 'node:os'
import { join } from 'node:path'
import { toHex } from '../src/core/bytes.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../src/identity/did-key.ts'
import { DEFAULT_PARAMS, type GenesisDoc } from '../src/chain/genesis.ts'
import { MemoryHub } from '../src/net/memory-transport.ts'
import { encodeTx, signTx, txHash } from '../src/chain/tx.ts'
import { DonghaeNode } from '../src/node/index.ts'
import { VerifyPool } from '../src/identity/verify-pool.ts'
import { ed25519VerifyRate, line, type BenchLine, type MeasureOptions } from './harness.ts'

export const CHAIN_BENCH_NAMES = ['ed25519-verify-ceiling', 'chain-finalized-transfers', 'chain-finality']

const VALIDATORS = 4
const SENDERS = 40
const TXS_PER_SENDER = 50
const STEADY_TXS = 30

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0
}

function verifyCeiling(options: MeasureOptions): { perCore: number; ceiling: number; rounds: number[] } {
  const m = ed25519VerifyRate(options)
  return { perCore: m.perSecond, ceiling: (m.perSecond * availableParallelism()) / VALIDATORS, rounds: m.rounds }
}

export async function chainBenches(options: MeasureOptions, scale = 1): Promise<BenchLine[]> {
  const ceiling = verifyCeiling(options)
  const validators = Array.from({ length: VALIDATORS }, () => Ed25519KeyPair.generate())
  const senders = Array.from({ length: Math.max(1, Math.round(SENDERS * scale)) }, () => Ed25519KeyPair.generate())
  const perSender = Math.max(1, Math.round(TXS_PER_SENDER * scale))
  const did = (k: Ed25519KeyPair): string => didFromEd25519PublicKey(k.publicKey)
  const genesis: GenesisDoc = {
    chainId: 'donghae-bench',
    genesisTime: Date.now(),
    params: { ...DEFAULT_PARAMS, timeoutCommitMs: 0, hashesPerTick: 200, ticksPerSecond: 50, epochLength: 100_000 },
    accounts: [...validators, ...senders].map((k) => ({ did: did(k), balance: 1_000_000_000n })),
    validators: validators.map((k) => ({ did: did(k), stake: 100_000n })),
  }
  const recipient = did(Ed25519KeyPair.generate())
  const txs = senders.flatMap((s) =>
    Array.from({ length: perSender }, (_, n) =>
      encodeTx(
        signTx(s, {
          chainId: genesis.chainId,
          nonce: BigInt(n),
          fee: 1n,
          kind: 'bank.transfer',
          body: { to: recipient, amount: 1n },
        }),
      ),
    ),
  )
  const submitted = new Map<string, number>()
  const latencies: number[] = []
  const blockTimes: number[] = []
  let lastCommit = 0
  let done: () => void = () => {}
  const allCommitted = new Promise<void>((resolve) => (done = resolve))
  const root = await mkdtemp(join(tmpdir(), 'donghae-bench-chain-'))
  const hub = new MemoryHub()
  const nodes: DonghaeNode[] = []
  // One pool for the process: the in-process validators share the machine's spare cores.
  const verifyPool = new VerifyPool()
  verifyPool.start()
  try {
    for (const [i, key] of validators.entries()) {
      nodes.push(
        await DonghaeNode.create({
          dataDir: join(root, `node${i}`),
          genesis,
          key,
          transport: hub.join(did(key)),
          poh: 'inline',
          verifyPool,
          ...(i === 0
            ? {
                onCommit: (block) => {
                  const now = performance.now()
                  if (lastCommit > 0) blockTimes.push(now - lastCommit)
                  lastCommit = now
                  for (const tx of block.txs) {
                    const at = submitted.get(toHex(txHash(tx)))
                    if (at !== undefined) latencies.push(now - at)
                  }
                  if (latencies.length >= txs.length) done()
                },
              }
            : {}),
        }),
      )
    }
    for (const node of nodes) node.start()
    // Let the chain warm up (first blocks, JIT) before timing.
    while ((nodes[0] as DonghaeNode).app.head.height < 3) await new Promise((r) => setTimeout(r, 20))
    const start = performance.now()
    await Promise.all(
      txs.map((bytes, i) => {
        submitted.set(toHex(txHash(bytes)), performance.now())
        return (nodes[i % nodes.length] as DonghaeNode).runtime.submitTx(bytes)
      }),
    )
    const timeout = setTimeout(done, 120_000)
    await allCommitted
    clearTimeout(timeout)
    const seconds = (performance.now() - start) / 1000
    const tps = latencies.length / seconds
    const burst = latencies.splice(0)
    // Steady load well below capacity: one transfer every 100 ms; finality = submit → committed.
    const steadySender = senders[0] as Ed25519KeyPair
    const steadyCount = Math.max(5, Math.round(STEADY_TXS * scale))
    const steady = Array.from({ length: steadyCount }, (_, n) =>
      encodeTx(
        signTx(steadySender, {
          chainId: genesis.chainId,
          nonce: BigInt(perSender + n),
          fee: 1n,
          kind: 'bank.transfer',
          body: { to: recipient, amount: 1n },
        }),
      ),
    )
    const steadyDone = new Promise<void>((resolve) => (done = resolve))
    const expected = steadyCount
    const checkSteady = setInterval(() => {
      if (latencies.length >= expected) done()
    }, 20)
    for (const [n, bytes] of steady.entries()) {
      submitted.set(toHex(txHash(bytes)), performance.now())
      await (nodes[n % nodes.length] as DonghaeNode).runtime.submitTx(bytes)
      await new Promise((r) => setTimeout(r, 100))
    }
    const steadyTimeout = setTimeout(done, 30_000)
    await steadyDone
    clearTimeout(steadyTimeout)
    clearInterval(checkSteady)
    latencies.sort((a, b) => a - b)
    burst.sort((a, b) => a - b)
    blockTimes.sort((a, b) => a - b)
    const ratio = tps / ceiling.ceiling
    return [
      line({
        bench: 'ed25519-verify-ceiling',
        impl: `node:crypto verify/s × ${availableParallelism()} cores ÷ ${VALIDATORS} validators`,
        value: ceiling.ceiling,
        unit: 'tx/s',
        rounds: ceiling.rounds,
      }),
      line({
        bench: 'chain-finalized-transfers',
        impl: `${VALIDATORS} validators in one process, in-memory network, ${txs.length} transfers from ${senders.length} senders`,
        value: tps,
        unit: 'tx/s',
        baseline: { impl: 'ed25519-verify-ceiling', value: ceiling.ceiling },
        target: { value: 0.5, met: ratio >= 0.5, note: 'ratio to the verify ceiling' },
        rounds: [tps],
      }),
      {
        ...line({
          bench: 'chain-finality',
          impl: 'steady load (1 transfer / 100 ms): submit → committed on node0, p50',
          value: percentile(latencies, 50),
          unit: 'ms',
          target: { value: 1000, met: percentile(latencies, 50) <= 1000, note: 'finality p50 ≤ 1 s' },
          rounds: [percentile(latencies, 50)],
        }),
        p99: Math.round(percentile(latencies, 99)),
        blockIntervalP50: Math.round(percentile(blockTimes, 50)),
        committed: latencies.length,
        burstP50: Math.round(percentile(burst, 50)),
      } as BenchLine,
    ]
  } finally {
    for (const node of nodes) await node.stop()
    await verifyPool.stop()
    await rm(root, { recursive: true, force: true })
  }
}

if (import.meta.main === true) {
  for (const l of await chainBenches({ roundMs: 300, rounds: 3 })) process.stdout.write(`${JSON.stringify(l)}\n`)
}
