/**
 * The state tree's costs:
 *  - `state-set`: one update (set + new root) in a tree of 10 000 keys, against a plain Map set;
 *    and the same updates applied as a batch of 1 000 per root, as a block would;
 *  - `state-prove` / `state-verify`: inclusion proofs in that tree (proving against `get`);
 *  - `state-rebuild`: `fromEntries` + root over 100 000 entries (the start-up rebuild from
 *    LevelDB), against building a Map of the same entries.
 */
import { randomBytes } from 'node:crypto'
import { SparseMerkleTree, verifyProof, type StateChange, type StateEntry } from '../src/chain/state/index.ts'
import { line, measure, type BenchLine, type MeasureOptions } from './harness.ts'

export const STATE_BENCH_NAMES = ['state-set', 'state-prove', 'state-verify', 'state-rebuild']

const TREE_KEYS = 10_000
const REBUILD_KEYS = 100_000
const BATCH = 1_000

/** Keys shaped like a module prefix + did:key, values like a small dag-cbor balance record. */
function makeEntries(count: number): StateEntry[] {
  const prefix = Buffer.from('bank/balance/did:key:z6Mk')
  return Array.from({ length: count }, () => [
    new Uint8Array(Buffer.concat([prefix, randomBytes(32)])),
    new Uint8Array(randomBytes(24)),
  ])
}

export function stateBenches(options: MeasureOptions): BenchLine[] {
  const entries = makeEntries(TREE_KEYS)
  const tree = SparseMerkleTree.fromEntries(entries)
  tree.root()
  return [...setBenches(tree, entries, options), ...proofBenches(tree, entries, options), rebuildBench(options)]
}

function setBenches(tree: SparseMerkleTree, entries: StateEntry[], options: MeasureOptions): BenchLine[] {
  const updates: StateChange[] = entries.map(([key]) => [key, new Uint8Array(randomBytes(24))])
  const map = new Map(entries.map(([key, value]) => [Buffer.from(key).toString('latin1'), value]))
  const mapKeys = [...map.keys()]
  const mapSet = measure((n) => {
    for (let i = 0; i < n; i++) map.set(mapKeys[i % TREE_KEYS] as string, updates[i % TREE_KEYS]?.[1] as Uint8Array)
  }, options)
  const oneByOne = measure((n) => {
    let t = tree
    for (let i = 0; i < n; i++) {
      const [key, value] = updates[i % TREE_KEYS] as StateChange
      t = t.set(key, value as Uint8Array)
      t.root()
    }
  }, options)
  const batched = measure((n) => {
    let t = tree
    for (let done = 0; done < n; done += BATCH) {
      const start = done % TREE_KEYS
      t = t.apply(updates.slice(start, start + Math.min(BATCH, n - done)))
      t.root()
    }
  }, options)
  const baseline = { impl: 'Map.set (string keys, no hashing)', value: mapSet.perSecond }
  return [
    line({
      bench: 'state-set',
      impl: 'set + root, 10k keys',
      value: oneByOne.perSecond,
      unit: 'updates/s',
      baseline,
      rounds: oneByOne.rounds,
    }),
    line({
      bench: 'state-set',
      impl: `apply ${BATCH} + root, 10k keys`,
      value: batched.perSecond,
      unit: 'updates/s',
      baseline,
      rounds: batched.rounds,
    }),
  ]
}

function proofBenches(tree: SparseMerkleTree, entries: StateEntry[], options: MeasureOptions): BenchLine[] {
  const get = measure((n) => {
    for (let i = 0; i < n; i++) tree.get((entries[i % TREE_KEYS] as StateEntry)[0])
  }, options)
  const prove = measure((n) => {
    for (let i = 0; i < n; i++) tree.prove((entries[i % TREE_KEYS] as StateEntry)[0])
  }, options)
  const root = tree.root()
  const proofs = entries.slice(0, 1_000).map(([key, value]) => ({ key, value, proof: tree.prove(key) }))
  const verify = measure((n) => {
    for (let i = 0; i < n; i++) {
      const { key, value, proof } = proofs[i % proofs.length] as (typeof proofs)[number]
      if (!verifyProof(root, key, value, proof)) throw new Error('bench proof failed to verify')
    }
  }, options)
  const depth = proofs.reduce((sum, p) => sum + p.proof.siblings.length, 0) / proofs.length
  return [
    line({
      bench: 'state-prove',
      impl: 'prove, 10k keys',
      value: prove.perSecond,
      unit: 'proofs/s',
      baseline: { impl: 'get (same walk, no copies)', value: get.perSecond },
      rounds: prove.rounds,
    }),
    line({
      bench: 'state-verify',
      impl: `verifyProof, 10k keys (mean ${depth.toFixed(1)} siblings)`,
      value: verify.perSecond,
      unit: 'proofs/s',
      rounds: verify.rounds,
    }),
  ]
}

function rebuildBench(options: MeasureOptions): BenchLine {
  const entries = makeEntries(REBUILD_KEYS)
  const mapBuild = measure((n) => {
    for (let i = 0; i < n; i++) new Map(entries.map(([key, value]) => [Buffer.from(key).toString('latin1'), value]))
  }, options)
  // One rebuild outlasts a default round, so each round is one rebuild; three keep the run short.
  const rebuild = measure(
    (n) => {
      for (let i = 0; i < n; i++) SparseMerkleTree.fromEntries(entries).root()
    },
    { ...options, rounds: Math.min(options.rounds ?? 5, 3) },
  )
  return line({
    bench: 'state-rebuild',
    impl: 'fromEntries + root, 100k entries',
    value: rebuild.perSecond * REBUILD_KEYS,
    unit: 'entries/s',
    baseline: { impl: 'new Map (string keys, no hashing)', value: mapBuild.perSecond * REBUILD_KEYS },
    rounds: rebuild.rounds.map((r) => r * REBUILD_KEYS),
  })
}
