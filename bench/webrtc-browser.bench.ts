/**
 * A real browser's WebRTC data channel to a node (issue 13): Chromium (Debian's, driven by
 * playwright-core) runs the dashboard's offerer (web/src/webrtc-client.ts) against a node-side
 * WebRtcAnswerer on loopback, both speaking channel.ts's frames, the node serving them with
 * `serveChannel`. The same frames and the same `serveChannel` then run over a libp2p stream
 * between two hosts made by `createHost` (TCP, noise, yamux; loopback) in the same run: the
 * baseline. Two lines:
 *
 *  - `webrtc-browser-rtt`: p50 round trip of a small request (a 4-byte echo: `req` → `res`), in
 *    µs, with p99 and both sides' spreads; baseline the same over the libp2p stream.
 *  - `webrtc-browser-throughput`: node → browser bytes per second of one request answered with
 *    32 KiB progress frames (a streamed answer's shape, at the channel's size; serveChannel's
 *    backpressure paces them), in kB/s; baseline the same over the libp2p stream. `upload` holds
 *    the other direction: 32 KiB requests, 8 in flight (serveChannel's limit), both transports.
 *
 * The page is served by the bench's own HTTP server (its offer route verifies the offer with
 * `verifyOffer` exactly as the node's does); the client module is the TypeScript source with its
 * types stripped (`module.stripTypeScriptTypes`), not the Vite bundle. Without /usr/bin/chromium
 * the suite prints nothing.
 *
 *   node bench/run.ts --only webrtc-browser
 */
import { existsSync, readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { stripTypeScriptTypes } from 'node:module'
import type { AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import { lpStream } from '@libp2p/utils'
import nodeDataChannel from 'node-datachannel'
import { chromium } from 'playwright-core'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { createHost, type DonghaeHost } from '../src/net/host.ts'
import { ChannelClient, serveChannel, type ChannelHandler } from '../src/net/webrtc/channel.ts'
import type { MessageChannel } from '../src/net/webrtc/peer.ts'
import { WebRtcAnswerer } from '../src/net/webrtc/peer.ts'
import { ReplayCache, verifyOffer } from '../src/net/webrtc/signal.ts'
import { line, type BenchLine } from './harness.ts'

export const WEBRTC_BROWSER_BENCH_NAMES = ['webrtc-browser-rtt', 'webrtc-browser-throughput']
const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run']
const PROTOCOL = '/donghae-bench/channel/1.0.0'
const CHUNK = 32 * 1024
/** Requests in flight while measuring upload (serveChannel's default per-channel limit). */
const WINDOW = 8
/** Cross-origin isolation: the page's performance.now() ticks in 5 µs instead of 100 µs. */
const ISOLATED = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' }
const CLIENT_SOURCE = new URL('../web/src/webrtc-client.ts', import.meta.url)

interface Sizes {
  rtts: number
  /** Bytes each way for the throughput figures. */
  bytes: number
  chunk: number
  window: number
}

interface Samples {
  /** Round trips, ms. */
  rtt: number[]
  /** Node → client: `down` bytes of progress frames in `downMs`. */
  down: number
  downMs: number
  /** Client → node: `up` bytes of requests in `upMs`. */
  up: number
  upMs: number
}

type Request = (body: unknown, onProgress?: (body: unknown) => void) => Promise<unknown>

/**
 * The measurement, run as is on both sides: in Node over channel.ts's ChannelClient, and in the
 * page (its source, as Node's type stripping leaves it, is inlined there: it uses nothing else).
 */
async function measure(request: Request, sizes: Sizes): Promise<Samples> {
  for (let i = 0; i < 20; i++) await request({ op: 'echo', data: 'ping' })
  const rtt: number[] = []
  for (let i = 0; i < sizes.rtts; i++) {
    const t = performance.now()
    await request({ op: 'echo', data: 'ping' })
    rtt.push(performance.now() - t)
  }
  let down = 0
  let t = performance.now()
  await request({ op: 'stream', bytes: sizes.bytes, chunk: sizes.chunk }, (b) => {
    down += (b as string).length
  })
  const downMs = performance.now() - t
  const data = 'x'.repeat(sizes.chunk)
  let sent = 0
  let up = 0
  const upload = async (): Promise<void> => {
    while (sent < sizes.bytes) {
      sent += data.length
      const n = (await request({ op: 'sink', data })) as number
      up += n
    }
  }
  t = performance.now()
  await Promise.all(Array.from({ length: sizes.window }, upload))
  return { rtt, down, downMs, up, upMs: performance.now() - t }
}

/** echo: the body's data back; stream: `bytes` in `chunk`-sized progress frames; sink: the data's length. */
const handler: ChannelHandler = async (request, { progress }) => {
  const r = request as { op: string; data?: string; bytes?: number; chunk?: number }
  if (r.op === 'echo') return r.data
  if (r.op === 'sink') return (r.data ?? '').length
  const piece = 'x'.repeat(r.chunk ?? 1024)
  let sent = 0
  for (; sent < (r.bytes ?? 0); sent += piece.length) await progress(piece)
  return sent
}

// ---- the browser side ------------------------------------------------------------------------

const PAGE = `<!doctype html><meta charset="utf-8"><title>webrtc bench</title>
<script type="module">
import { connect } from '/webrtc-client.js'
const measure = ${measure.toString()}
window.runBench = async ({ did, sizes }) => {
  const session = await connect({ endpoint: location.origin, did })
  const samples = await measure((body, onProgress) => session.client.request(body, { onProgress }), sizes)
  await session.close()
  return { ...samples, check: session.certificateCheck, isolated: crossOriginIsolated }
}
window.ready = true
</script>`

async function body(req: IncomingMessage): Promise<unknown> {
  let text = ''
  for await (const chunk of req) text += String(chunk)
  return JSON.parse(text)
}

/** An HTTP server with the page, the client module and the offer route, over a WebRtcAnswerer. */
async function signallingServer(): Promise<{ url: string; did: string; stop(): Promise<void> }> {
  const replay = new ReplayCache()
  const answerer = new WebRtcAnswerer({
    key: Ed25519KeyPair.generate(),
    onConnection: (connection) => void serveChannel(connection.channel, handler),
  })
  const module = stripTypeScriptTypes(readFileSync(CLIENT_SOURCE, 'utf8'))
  const server: Server = createServer((req, res) => {
    void (async () => {
      if (req.method === 'POST' && req.url === '/v1/webrtc/offer') {
        try {
          const verified = verifyOffer(await body(req), { self: answerer.did, now: Date.now(), replay })
          res
            .writeHead(201, { 'content-type': 'application/json' })
            .end(JSON.stringify(await answerer.answer(verified)))
        } catch (err) {
          res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(err) }))
        }
      } else if (req.url === '/webrtc-client.js') {
        res.writeHead(200, { 'content-type': 'text/javascript', ...ISOLATED }).end(module)
      } else {
        res.writeHead(200, { 'content-type': 'text/html', ...ISOLATED }).end(PAGE)
      }
    })()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    did: answerer.did,
    stop: async () => {
      answerer.stop()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

async function browserSamples(sizes: Sizes): Promise<Samples & { check: string; isolated: boolean }> {
  const node = await signallingServer()
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS })
  try {
    const page = await browser.newPage()
    await page.goto(node.url)
    await page.waitForFunction('window.ready === true')
    return (await page.evaluate(`window.runBench(${JSON.stringify({ did: node.did, sizes })})`)) as Samples & {
      check: string
      isolated: boolean
    }
  } finally {
    await browser.close()
    await node.stop()
  }
}

// ---- the libp2p baseline ---------------------------------------------------------------------

/** channel.ts's MessageChannel over a libp2p stream: one length-prefixed frame per message. */
function streamChannel(stream: Parameters<typeof lpStream>[0]): MessageChannel {
  const lp = lpStream(stream, { maxDataLength: 128 * 1024 })
  const encoder = new TextEncoder()
  const decoder = new TextDecoder()
  const messages: Array<(text: string) => void> = []
  const closed: Array<() => void> = []
  let open = true
  let queued = 0
  let writing = Promise.resolve()
  const close = (): void => {
    if (!open) return
    open = false
    for (const listener of closed) listener()
  }
  void (async () => {
    try {
      for (;;) {
        const text = decoder.decode((await lp.read()).subarray())
        for (const listener of messages) listener(text)
      }
    } catch {
      close()
    }
  })()
  return {
    send: (text) => {
      if (!open) return false
      const bytes = encoder.encode(text)
      queued += bytes.length
      writing = writing
        .then(() => lp.write(bytes))
        .then(
          () => void (queued -= bytes.length),
          () => close(),
        )
      return true
    },
    onMessage: (listener) => void messages.push(listener),
    onClosed: (listener) => void closed.push(listener),
    isOpen: () => open,
    bufferedAmount: () => queued,
    maxMessageSize: () => 0,
    close: () => {
      close()
      void stream.close().catch(() => {})
    },
  }
}

async function libp2pSamples(sizes: Sizes): Promise<Samples> {
  const options = { host: '127.0.0.1', port: 0, quic: false, webSockets: false, webrtc: false, mdns: false } as const
  const hosts: DonghaeHost[] = []
  try {
    const server = await createHost({ key: Ed25519KeyPair.generate(), ...options })
    hosts.push(server)
    const caller = await createHost({ key: Ed25519KeyPair.generate(), ...options })
    hosts.push(caller)
    await server.start()
    await caller.start()
    await server.handle(PROTOCOL, (stream) => void serveChannel(streamChannel(stream), handler))
    const stream = await caller.dialProtocol(server.getMultiaddrs()[0] as never, PROTOCOL)
    const client = new ChannelClient(streamChannel(stream))
    const samples = await measure(
      (body, onProgress) => client.request(body, onProgress === undefined ? {} : { onProgress }),
      sizes,
    )
    client.close()
    return samples
  } finally {
    await Promise.all(hosts.map((h) => h.stop()))
  }
}

// ---- the lines -------------------------------------------------------------------------------

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0
}

function spreadUs(ms: number[]): { p50: number; p99: number; samples: number } {
  const sorted = ms.map((x) => x * 1000).sort((a, b) => a - b)
  return { p50: Math.round(percentile(sorted, 50)), p99: Math.round(percentile(sorted, 99)), samples: ms.length }
}

const kBps = (bytes: number, ms: number): number => bytes / 1000 / (ms / 1000)

export async function webrtcBrowserBenches(quick = false): Promise<BenchLine[]> {
  if (!existsSync(CHROMIUM)) return []
  const sizes: Sizes = {
    rtts: quick ? 30 : 1000,
    bytes: quick ? 2 ** 20 : 32 * 2 ** 20,
    chunk: CHUNK,
    window: WINDOW,
  }
  const LIBP2P = 'libp2p TCP stream on loopback (noise, yamux; the same frames and serveChannel)'
  try {
    const browser = await browserSamples(sizes)
    const libp2p = await libp2pSamples(sizes)
    const b = spreadUs(browser.rtt)
    const l = spreadUs(libp2p.rtt)
    const down = { browser: kBps(browser.down, browser.downMs), libp2p: kBps(libp2p.down, libp2p.downMs) }
    const up = { browser: kBps(browser.up, browser.upMs), libp2p: kBps(libp2p.up, libp2p.upMs) }
    return [
      {
        ...line({
          bench: 'webrtc-browser-rtt',
          impl: 'Chromium ↔ node WebRTC data channel (channel.ts req → res, 4-byte echo), p50',
          value: Math.max(b.p50, 1),
          unit: 'µs',
          baseline: { impl: `${LIBP2P}, p50`, value: Math.max(l.p50, 1) },
          rounds: [b.p50],
        }),
        browser: b,
        libp2p: l,
        certificateCheck: browser.check,
        crossOriginIsolated: browser.isolated,
      } as BenchLine,
      {
        ...line({
          bench: 'webrtc-browser-throughput',
          impl: `node → Chromium WebRTC data channel, ${CHUNK / 1024} KiB progress frames of one request, ${sizes.bytes / 2 ** 20} MiB`,
          value: down.browser,
          unit: 'kB/s',
          baseline: { impl: LIBP2P, value: down.libp2p },
          rounds: [down.browser],
        }),
        upload: {
          impl: `Chromium → node, ${CHUNK / 1024} KiB requests, ${WINDOW} in flight`,
          browser: Math.round(up.browser),
          libp2p: Math.round(up.libp2p),
          ratio: Number((up.browser / up.libp2p).toFixed(3)),
        },
      } as BenchLine,
    ]
  } finally {
    nodeDataChannel.cleanup()
  }
}
