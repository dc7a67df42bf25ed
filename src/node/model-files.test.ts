// A registered model's files fetched into the content store as one view: graph and tokenizer at
// once, progress summed, a second request joining the first (the API's fetchModel and fetches).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FetchView } from '../api/inference-api.ts'
import { didFromPeerId } from '../identity/peer-id.ts'
import { ContentStore, ContentUnavailableError } from '../net/content-store.ts'
import { RAW_CODE, cidOfBytes } from '../core/cid.ts'
import { bytesOf, loopbackHost } from '../../test/helpers/content.ts'
import { contentFiles, filesOf, ModelFetches } from './model-files.ts'

test('fetchModel fetches the graph and the tokenizer together, sums their progress, and joins a running fetch', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-model-files-'))
  const [ha, hb] = [await loopbackHost(), await loopbackHost()]
  const a = await ContentStore.open({ libp2p: ha, dir: join(dir, 'a') })
  const b = await ContentStore.open({ libp2p: hb, dir: join(dir, 'b'), fetch: { stallMs: 1_000 } })
  try {
    const graph = await a.addFile(bytesOf(3_000_000, 'graph'))
    const tokenizer = await a.addFile(new TextEncoder().encode('{"vocab":["a","b"]}'))
    await hb.dial(ha.getMultiaddrs()[0] as never)
    const model = { cid: graph.cid, name: 'tiny-lm', codec: tokenizer.cid, files: { 'tokenizer.json': tokenizer.cid } }
    assert.deepEqual(filesOf(model), [graph.cid, tokenizer.cid])
    const fetches = new ModelFetches(contentFiles(b), () => [])
    const seen: FetchView[] = []
    const first = fetches.fetch(model, (v) => seen.push(v))
    const second = fetches.fetch(model) // joins
    const [done, joined] = await Promise.all([first, second])
    assert.equal(done.state, 'done')
    assert.deepEqual(joined, done)
    assert.equal(done.bytes, done.totalBytes)
    assert.ok((done.totalBytes ?? 0) > 3_000_000)
    assert.deepEqual(Object.keys(done.fromPeers), [didFromPeerId(ha.peerId)])
    assert.equal(seen[0]?.state, 'fetching')
    assert.equal(seen.at(-1)?.state, 'done')
    assert.deepEqual(
      fetches.list().map((v) => [v.name, v.state]),
      [['tiny-lm', 'done']],
    )
    assert.deepEqual(await b.read(graph.cid), await a.read(graph.cid))
    // a model nobody has fails, and its view says so
    const ghost = { cid: cidOfBytes(bytesOf(10, 'nobody'), RAW_CODE).toString(), name: 'ghost' }
    await assert.rejects(fetches.fetch(ghost), ContentUnavailableError)
    const failed = fetches.list()[0]
    assert.equal(failed?.name, 'ghost')
    assert.equal(failed?.state, 'failed')
    assert.match(failed?.error ?? '', /no block arrived/)
  } finally {
    await b.close()
    await a.close()
    await hb.stop()
    await ha.stop()
    await rm(dir, { recursive: true, force: true })
  }
})
