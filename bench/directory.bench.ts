/**
 * DID directory search latency (issue 13): `DirectoryIndex.search` at 100,000 signed entries in a
 * SQLite file (WAL), every entry added through `register` (signature checked). The queries mix
 * what an offerer types: a category word ("restaurant"), one or two description words, a rare
 * word, text with a category filter, a category filter alone; first pages of 20. One line,
 * `directory-search`: p50 per search in µs with p99 and the per-kind p50s, against the same-run
 * baseline `get(did)` (a primary-key read and decode of one entry) at the same size.
 *
 *   node bench/run.ts --only directory
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { DirectoryIndex, signRegistration, type SearchQuery } from '../src/directory/index.ts'
import { line, type BenchLine } from './harness.ts'

export const DIRECTORY_BENCH_NAMES = ['directory-search']
const ENTRIES = 100_000
const QUICK_ENTRIES = 2_000

const CATEGORIES = [
  'restaurant',
  'cafe',
  'bakery',
  'bar',
  'grocery',
  'pharmacy',
  'clinic',
  'dentist',
  'school',
  'library',
  'hotel',
  'hostel',
  'taxi',
  'repair',
  'plumber',
  'electrician',
  'lawyer',
  'accountant',
  'gym',
  'salon',
  'florist',
  'bookshop',
  'museum',
  'cinema',
  'tutor',
  'translator',
  'photographer',
  'printer',
  'laundry',
  'tailor',
  'vet',
  'garage',
  'llm',
  'ocr',
  'speech',
  'vision',
  'storage',
  'relay',
  'gpu',
  'market',
]
const TAGS = [
  'vegan',
  'late-night',
  'delivery',
  'parking',
  'wifi',
  'kids',
  'pets',
  'cheap',
  'premium',
  'korean',
  'english',
]

function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

/** A vocabulary of 5,000 made-up words drawn with a Zipf-like skew (a few common, most rare). */
function vocabulary(random: () => number): { words: string[]; draw: () => string } {
  const syllables = ['ka', 'no', 'mi', 'sa', 'to', 're', 'hu', 'ban', 'gol', 'dae', 'jin', 'seo', 'pa', 'lo', 'ri']
  const words = Array.from({ length: 5_000 }, (_, i) => {
    let w = ''
    let n = i + 1
    while (n > 0) {
      w += syllables[n % syllables.length]
      n = Math.floor(n / syllables.length)
    }
    return w
  })
  return { words, draw: () => words[Math.min(words.length - 1, Math.floor(words.length * random() ** 3))] as string }
}

function pick<T>(random: () => number, from: readonly T[]): T {
  return from[Math.floor(random() * from.length)] as T
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0
}

function spread(us: number[]): { p50: number; p99: number; samples: number } {
  const sorted = [...us].sort((a, b) => a - b)
  return {
    p50: Number(percentile(sorted, 50).toFixed(1)),
    p99: Number(percentile(sorted, 99).toFixed(1)),
    samples: us.length,
  }
}

export function directoryBenches(quick = false): BenchLine[] {
  const entries = quick ? QUICK_ENTRIES : ENTRIES
  const random = rng(0x13)
  const vocab = vocabulary(random)
  const now = Date.now()
  const dir = mkdtempSync(join(tmpdir(), 'donghae-directory-bench-'))
  const unlimited = { burst: 1e12, perMs: 1 }
  const index = new DirectoryIndex({
    path: join(dir, 'directory.sqlite'),
    limits: { perDid: unlimited, perClient: unlimited },
  })
  try {
    const dids: string[] = []
    const seed = new Uint8Array(32)
    const fillStart = performance.now()
    for (let i = 0; i < entries; i++) {
      new DataView(seed.buffer).setUint32(0, i + 1)
      const key = Ed25519KeyPair.fromSeed(seed)
      const categories = [...new Set([pick(random, CATEGORIES), ...(random() < 0.3 ? [pick(random, CATEGORIES)] : [])])]
      const tags = [...new Set(Array.from({ length: Math.floor(random() * 4) }, () => pick(random, TAGS)))]
      const description = Array.from({ length: 8 + Math.floor(random() * 24) }, vocab.draw).join(' ')
      const record = signRegistration(key, {
        description,
        categories,
        tags,
        bootstrap: [`/ip4/10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/tcp/4001`],
        endpoint: `https://n${i}.example.org/signal`,
        seq: 1,
        expires: now + 7 * 86_400_000,
      })
      index.register(record)
      dids.push(record.did)
    }
    const fillMs = performance.now() - fillStart

    const kinds: Array<{ name: string; make: () => SearchQuery }> = [
      { name: 'category-word', make: () => ({ query: pick(random, CATEGORIES) }) },
      { name: 'one-word', make: () => ({ query: vocab.draw() }) },
      { name: 'two-words', make: () => ({ query: `${vocab.draw()} ${vocab.draw()}` }) },
      { name: 'rare-word', make: () => ({ query: pick(random, vocab.words.slice(2_500)) }) },
      { name: 'word+category', make: () => ({ query: vocab.draw(), category: pick(random, CATEGORIES) }) },
      { name: 'category-only', make: () => ({ category: pick(random, CATEGORIES) }) },
    ]
    const perKind = quick ? 20 : 300
    const searchUs: number[] = []
    const byKind: Record<string, number[]> = {}
    let hits = 0
    // Warm-up, then the timed queries interleaved with the baseline reads so both see the same load.
    for (let i = 0; i < 50; i++) index.search(pick(random, kinds).make())
    const getUs: number[] = []
    for (let round = 0; round < perKind; round++) {
      for (const kind of kinds) {
        const q = kind.make()
        const start = performance.now()
        hits += index.search(q).hits.length
        const us = (performance.now() - start) * 1000
        searchUs.push(us)
        ;(byKind[kind.name] ??= []).push(us)
        const did = pick(random, dids)
        const getStart = performance.now()
        if (index.get(did) === undefined) throw new Error('bench: entry missing')
        getUs.push((performance.now() - getStart) * 1000)
      }
    }
    const s = spread(searchUs)
    const g = spread(getUs)
    return [
      {
        ...line({
          bench: 'directory-search',
          impl: `DirectoryIndex.search (node:sqlite FTS5, bm25, first page of 20) at ${entries} entries, p50`,
          value: Math.max(s.p50, 1),
          unit: 'µs',
          baseline: {
            impl: `DirectoryIndex.get(did) (primary key) at ${entries} entries, p50`,
            value: Math.max(g.p50, 1),
          },
          rounds: [s.p50],
        }),
        entries,
        search: s,
        get: g,
        kinds: Object.fromEntries(Object.entries(byKind).map(([name, us]) => [name, spread(us)])),
        meanHits: Number((hits / searchUs.length).toFixed(1)),
        fillPerSecond: Math.round(entries / (fillMs / 1000)),
      } as BenchLine,
    ]
  } finally {
    index.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
