// Model files of any size between real processes (issue 11): a 200 MB ONNX model (one dense layer
// of 5,000 × 10,000 float32 weights, built deterministically here with the node's ONNX writer) is
// published on one node and fetched by three others at once, over bitswap on TCP 127.0.0.1, each
// block from one peer and from whichever of the others already has it; one fetcher is killed with
// SIGKILL half way, which fails neither of the others' fetches, and when restarted on its
// directory it fetches only the blocks it lacks. Every copy is checked byte for byte (sha256 of
// the whole file, read back block by block against the CIDs), then loaded into ONNX Runtime in
// its fetcher's process (`OnnxRuntime.load`: the bytes against the UnixFS CID, the model safety
// check, a session) and run once: every fetcher's output hash is the one this process gets
// running the bytes it published.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ContentProc, type FetchAnswer, type RunAnswer } from '../helpers/content-procs.ts'
import { loadAndRun, syntheticInput, syntheticModel } from '../helpers/synthetic-model.ts'
import { tensorToB64Json } from '../../src/inference/tensor.ts'

const MB = 1_000_000
const SIZE = Number(process.env.DONGHAE_MODEL_FETCH_MB ?? 200) * MB

function total(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0)
}

test(
  'a 200 MB ONNX model published on one node is fetched by three others from each other, verified, loaded and run; a SIGKILLed peer fails no fetch',
  { timeout: 300_000 },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'donghae-model-fetch-'))
    const procs: ContentProc[] = []
    const starting = Promise.all(
      ['publisher', 'a', 'b', 'c'].map(async (name) => {
        const proc = await ContentProc.start(join(dir, name))
        procs.push(proc)
        return proc
      }),
    ) as Promise<[ContentProc, ContentProc, ContentProc, ContentProc]>
    starting.catch(() => {}) // awaited below; a failed start must not be an unhandled rejection meanwhile
    try {
      // the model is built here while the processes start, published, and run here once; its
      // bytes live in this function only (the fetchers read their own copies from their stores)
      const publish = async () => {
        const building = performance.now()
        const { bytes, k, n } = syntheticModel(SIZE)
        const inputs = syntheticInput(k)
        const sha256 = createHash('sha256').update(bytes).digest('hex')
        const path = join(dir, 'model.onnx')
        await writeFile(path, bytes)
        const buildMs = Math.round(performance.now() - building)
        const nodes = await starting
        const model = await nodes[0].add(path)
        assert.equal(model.size, bytes.length)
        t.diagnostic(
          `built a ${(bytes.length / MB).toFixed(1)} MB ONNX model (${k} × ${n} MatMul, Softmax) in ${buildMs} ms, published as ${model.cid} in ${model.ms} ms`,
        )
        // the direct run: the bytes as built here, loaded as the CID the publisher announced
        // (`load` refuses them unless they are that file)
        const direct = await loadAndRun(model.cid, bytes, inputs)
        t.diagnostic(
          `direct run: loaded in ${direct.loadMs} ms, ran in ${direct.runMs} ms on ${direct.ep}: class ${direct.top.index} (p ${direct.top.p.toFixed(5)}), outputs ${direct.outputHash.slice(0, 16)}…`,
        )
        return { nodes, model, sha256, inputs, direct }
      }
      const { nodes, model, sha256, inputs, direct } = await publish()
      const [p, f1, f2, f3] = nodes
      const wireInputs = Object.fromEntries(Object.entries(inputs).map(([name, x]) => [name, tensorToB64Json(x)]))
      const checkRun = (who: string, r: RunAnswer): void => {
        t.diagnostic(
          `${who}: read back in ${r.readMs} ms, loaded in ${r.loadMs} ms, ran in ${r.runMs} ms: class ${r.top.index}, outputs ${r.outputHash.slice(0, 16)}…`,
        )
        assert.equal(r.ep, 'cpu')
        assert.equal(r.outputHash, direct.outputHash, `${who}'s outputs are the direct run's`)
        assert.deepEqual(r.top, direct.top)
      }

      // a full mesh: every fetcher knows the publisher and the other fetchers
      for (const [x, y] of [
        [f1, p],
        [f2, p],
        [f3, p],
        [f1, f2],
        [f1, f3],
        [f2, f3],
      ] as const)
        await x.dial(y)

      const started = performance.now()
      let killed = false
      const f3Fetch = f3.fetch(model.cid).catch((err: unknown) => err)
      const fetches = [f1, f2].map((f) =>
        f.fetch(model.cid, (progress) => {
          // the third fetcher dies, unannounced, once the others are a third of the way
          if (!killed && progress.percent >= 33) {
            killed = true
            t.diagnostic(`SIGKILL ${f3.did.slice(-8)} at ${progress.percent}% of ${f.did.slice(-8)}`)
            f3.child.kill('SIGKILL')
          }
        }),
      )
      const results = (await Promise.all(fetches)) as FetchAnswer[]
      const seconds = (performance.now() - started) / 1000
      assert.ok(killed, 'the third fetcher was killed mid-fetch')
      assert.ok((await f3Fetch) instanceof Error)
      for (const [i, r] of results.entries()) {
        assert.equal(r.sha256, sha256, 'byte-identical')
        assert.equal(r.size, model.size)
        assert.equal(total(r.fromPeers), r.fetchedBlocks)
        assert.deepEqual(r.invalidFrom, {})
        const peers = Object.entries(r.fromPeers).map(([did, n]) => `${did.slice(-8)}:${n}`)
        t.diagnostic(
          `fetcher ${i + 1}: ${r.blocks} blocks in ${r.ms} ms, ${(r.fetchedBytes / MB / (r.ms / 1000)).toFixed(1)} MB/s, from ${peers.join(' ')}`,
        )
      }
      t.diagnostic(
        `3 parallel fetches (one killed): ${((2 * model.size) / MB / seconds).toFixed(1)} MB/s delivered in all over ${seconds.toFixed(1)} s`,
      )
      // more than one peer served blocks to a fetcher: the publisher and another fetcher
      const multi = results.filter((r) => Object.keys(r.fromPeers).length > 1)
      assert.ok(
        multi.length > 0,
        `some fetcher got blocks from more than one peer: ${JSON.stringify(results.map((r) => r.fromPeers))}`,
      )
      assert.ok(
        results.some((r) => Object.keys(r.fromPeers).some((did) => did !== p.did)),
        'a fetcher served another',
      )

      // each fetcher loads its copy into ONNX Runtime and runs it (both at once)
      const runs = await Promise.all([f1, f2].map((f) => f.run(model.cid, wireInputs)))
      runs.forEach((r, i) => checkRun(`fetcher ${i + 1}`, r))

      // the killed fetcher restarts on its directory and fetches only what it lacks
      const again = await ContentProc.start(join(dir, 'c'))
      procs.push(again)
      await again.dial(p)
      await again.dial(f1)
      const resumed = await again.fetch(model.cid)
      t.diagnostic(
        `restarted fetcher: ${resumed.fetchedBlocks} of ${resumed.blocks} blocks still missing after SIGKILL, fetched in ${resumed.ms} ms from ${Object.keys(resumed.fromPeers).length} peers`,
      )
      assert.equal(resumed.sha256, sha256)
      assert.ok(resumed.fetchedBlocks < resumed.blocks, 'blocks fetched before the kill were kept')
      checkRun('restarted fetcher', await again.run(model.cid, wireInputs))
    } finally {
      await starting.catch(() => {}) // every process that started is in procs
      await Promise.all(procs.map((proc) => proc.stop()))
      await rm(dir, { recursive: true, force: true })
    }
  },
)
