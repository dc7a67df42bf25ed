/**
 * A Donghae content store in its own process, for tests and benches of model fetching between
 * real processes: a libp2p host on 127.0.0.1 (TCP, the node's own `createHost`) and a
 * `ContentStore` in the directory given as the first argument. It prints `{"ready":…}` with its
 * DID and address, then answers JSON-line commands on stdin, one JSON line each on stdout
 * (`id` echoed; `{"id","error"}` on failure):
 *
 *   {"id":1,"cmd":"generate","size":N,"seed":"s"}  writes N deterministic bytes to a file, adds it
 *                                                   → {"cid","size","sha256","ms"}
 *   {"id":2,"cmd":"add","path":"…"}                 adds the file at `path` → {"cid","size","ms"}
 *   {"id":3,"cmd":"dial","addr":"/ip4/…/p2p/…"}     → {}
 *   {"id":4,"cmd":"fetch","cid":"…"}                fetches (progress lines `{"progress":…}` on
 *                                                   the way), then reads it back verified
 *                                                   → {result, "sha256", "ms"}
 *   {"id":5,"cmd":"run","cid":"…","inputs":{…}}    reads the file back verified, loads it into ONNX
 *                                                   Runtime (`OnnxRuntime.load`: CID check, model
 *                                                   safety check, session) and runs it once on
 *                                                   `inputs` (tensor JSON) → {"outputHash","top",
 *                                                   "ep","readMs","loadMs","runMs"}
 *   {"id":6,"cmd":"stop"}                            closes and exits
 *
 *   node test/helpers/content-node.ts <dir> [perPeer] [maxInFlight]
 */
import { createCipheriv, createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { multiaddr } from '@multiformats/multiaddr'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { didFromPeerId } from '../../src/identity/peer-id.ts'
import { createHost } from '../../src/net/host.ts'
import { ContentStore } from '../../src/net/content-store.ts'
import { describeError } from '../../src/core/errors.ts'

const [dir, perPeer, maxInFlight] = process.argv.slice(2)
if (dir === undefined) throw new Error('usage: content-node.ts <dir> [perPeer] [maxInFlight]')
await mkdir(dir, { recursive: true })

const host = await createHost({
  key: Ed25519KeyPair.generate(),
  host: '127.0.0.1',
  port: 0,
  quic: false,
  webSockets: false,
  mdns: false,
})
await host.start()
const store = await ContentStore.open({
  libp2p: host,
  dir,
  fetch: {
    ...(perPeer === undefined ? {} : { perPeer: Number(perPeer) }),
    ...(maxInFlight === undefined ? {} : { maxInFlight: Number(maxInFlight) }),
  },
})

function send(message: unknown): void {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

/** `size` bytes of the ChaCha20 keystream under sha256(seed), written to a file; its sha256. */
async function generate(path: string, size: number, seed: string): Promise<string> {
  const cipher = createCipheriv('chacha20', createHash('sha256').update(seed).digest(), Buffer.alloc(16))
  const hash = createHash('sha256')
  const out = createWriteStream(path)
  const piece = Buffer.alloc(4 * 1024 * 1024)
  for (let done = 0; done < size; done += piece.length) {
    const chunk = cipher.update(piece.subarray(0, Math.min(piece.length, size - done)))
    hash.update(chunk)
    if (!out.write(chunk)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
  return hash.digest('hex')
}

async function run(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
  switch (cmd.cmd) {
    case 'generate': {
      const started = performance.now()
      const path = join(dir as string, 'source.bin')
      const sha256 = await generate(path, Number(cmd.size), String(cmd.seed))
      const { cid, size } = await store.addFile(path)
      return { cid, size, sha256, ms: Math.round(performance.now() - started) }
    }
    case 'add': {
      const started = performance.now()
      const { cid, size } = await store.addFile(String(cmd.path))
      return { cid, size, ms: Math.round(performance.now() - started) }
    }
    case 'dial':
      await host.dial(multiaddr(String(cmd.addr)))
      return {}
    case 'fetch': {
      const started = performance.now()
      let reported = -1
      const result = await store.fetch(String(cmd.cid), {
        onProgress: (p) => {
          const percent = p.totalBytes === undefined ? 0 : Math.floor((p.bytes * 100) / p.totalBytes)
          if (percent < reported + 5) return
          reported = percent
          send({ id: cmd.id, progress: { percent, bytes: p.bytes, totalBytes: p.totalBytes, fromPeers: p.fromPeers } })
        },
      })
      const ms = Math.round(performance.now() - started)
      const hash = createHash('sha256')
      for await (const chunk of store.stream(String(cmd.cid))) hash.update(chunk)
      return { ...result, sha256: hash.digest('hex'), ms }
    }
    case 'run': {
      // ONNX Runtime is loaded only by the processes that run a model (benches only fetch)
      const [{ loadAndRun }, { tensorMapFromJson }] = await Promise.all([
        import('./synthetic-model.ts'),
        import('../../src/inference/tensor.ts'),
      ])
      const started = performance.now()
      const bytes = await store.read(String(cmd.cid))
      const readMs = Math.round(performance.now() - started)
      return { ...(await loadAndRun(String(cmd.cid), bytes, tensorMapFromJson(cmd.inputs))), readMs }
    }
    case 'stop':
      await store.close()
      await host.stop()
      send({ id: cmd.id })
      process.exit(0)
    // falls through (exit does not return)
    default:
      throw new Error(`unknown command ${String(cmd.cmd)}`)
  }
}

createInterface({ input: process.stdin }).on('line', (line) => {
  let cmd: Record<string, unknown>
  try {
    cmd = JSON.parse(line) as Record<string, unknown>
  } catch {
    return
  }
  run(cmd).then(
    (answer) => send({ id: cmd.id, ...answer }),
    (err: unknown) => send({ id: cmd.id, error: describeError(err), code: (err as { code?: unknown }).code }),
  )
})

send({
  ready: true,
  did: didFromPeerId(host.peerId),
  addr: host.getMultiaddrs()[0]?.toString(),
  pid: process.pid,
})
