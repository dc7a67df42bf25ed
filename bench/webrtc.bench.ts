/**
 * Node ↔ node WebRTC data channel (issue 13, part 4) against a libp2p stream, measured in the same
 * run on loopback, with the same code on both transports:
 *
 *  - round trip: a small request and its answer through channel.ts (`ChannelClient.request` →
 *    `serveChannel` echo: JSON frames `{t:'req'}` → `{t:'res'}`), sequential; p50 and p99;
 *  - throughput: 60 KiB text messages one way, the sender holding at most 1 MiB in the send
 *    buffer, the receiver acknowledging the last one; MB/s (10^6 bytes) of the best round.
 *
 * WebRTC: node-datachannel (libdatachannel: ICE host candidates, DTLS, SCTP) set up by signed
 * offer/answer (signal.ts, peer.ts). Baseline: two libp2p hosts from `createHost` (TCP, Noise,
 * Yamux; nothing else listening), one stream per measurement, messages framed by lpStream as
 * the node's own protocols frame theirs; a MessageChannel adapter puts channel.ts on it.
 *
 * One line, `webrtc-channel`: value = WebRTC round-trip p50 in µs, baseline = libp2p's, ratio =
 * WebRTC ÷ libp2p (above 1: WebRTC slower); `throughput` holds both MB/s and their ratio
 * (WebRTC ÷ libp2p: below 1, WebRTC slower).
 *
 *   node bench/run.ts --only webrtc
 */
import { performance } from 'node:perf_hooks'
import nodeDataChannel from 'node-datachannel'
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { createHost, type DonghaeHost } from '../src/net/host.ts'
import { ChannelClient, serveChannel } from '../src/net/webrtc/channel.ts'
import { WebRtcAnswerer, WebRtcOfferer, type MessageChannel, type WebRtcConnection } from '../src/net/webrtc/peer.ts'
import { ReplayCache, verifyOffer } from '../src/net/webrtc/signal.ts'
import { line, type BenchLine } from './harness.ts'

export const WEBRTC_BENCH_NAMES = ['webrtc-channel']

const MESSAGE_BYTES = 60 * 1024
const MAX_BUFFERED = 1024 * 1024
const RTT_PROTOCOL = '/donghae/bench/rtt/1.0.0'
const SINK_PROTOCOL = '/donghae/bench/sink/1.0.0'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0
}

/** A libp2p stream as a MessageChannel: one length-prefixed frame per text message. */
function streamChannel(stream: Stream): MessageChannel {
  const lp = lpStream(stream, { maxDataLength: 256 * 1024 })
  const messageListeners: ((text: string) => void)[] = []
  const closeListeners: (() => void)[] = []
  const decoder = new TextDecoder()
  const encoder = new TextEncoder()
  let open = true
  const closed = (): void => {
    if (!open) return
    open = false
    for (const listener of closeListeners) listener()
  }
  void (async () => {
    try {
      for (;;) {
        const frame = await lp.read()
        for (const listener of messageListeners) listener(decoder.decode(frame.subarray()))
      }
    } catch {
      closed()
    }
  })()
  return {
    send: (text) => {
      if (!open) return false
      lp.write(encoder.encode(text)).catch(closed)
      return true
    },
    onMessage: (listener) => void messageListeners.push(listener),
    onClosed: (listener) => void closeListeners.push(listener),
    isOpen: () => open,
    bufferedAmount: () => stream.writeBufferLength,
    maxMessageSize: () => 256 * 1024,
    close: () => {
      closed()
      stream.abort(new Error('closed'))
    },
  }
}

/** The receiving end of the throughput run: counts bytes, acknowledges each completed batch. */
function sink(channel: MessageChannel): void {
  let received = 0
  channel.onMessage((text) => {
    if (text.startsWith('batch:')) {
      const expected = Number(text.slice(6))
      const check = (): void => {
        if (received >= expected) {
          received -= expected
          channel.send('ack')
        } else setTimeout(check, 0)
      }
      check()
    } else received += text.length
  })
}

/** `count` 60 KiB messages, then the batch marker; resolves on the acknowledgement. MB/s. */
async function pump(channel: MessageChannel, count: number): Promise<number> {
  const payload = 'x'.repeat(MESSAGE_BYTES)
  const acked = new Promise<void>((resolve) => {
    const listener = (text: string): void => {
      if (text === 'ack') resolve()
    }
    channel.onMessage(listener)
  })
  const start = performance.now()
  for (let i = 0; i < count; i++) {
    while (channel.bufferedAmount() > MAX_BUFFERED) await sleep(1)
    if (!channel.send(payload)) throw new Error('the channel refused a message')
  }
  channel.send(`batch:${count * MESSAGE_BYTES}`)
  await acked
  return (count * MESSAGE_BYTES) / ((performance.now() - start) / 1000) / 1e6
}

interface Figures {
  rttUs: number[]
  mbps: number[]
}

/** Round trips (sequential, after a warm-up) and throughput rounds over one transport. */
async function measureTransport(
  rttChannel: MessageChannel,
  sinkChannel: MessageChannel,
  sizes: { requests: number; messages: number; rounds: number },
): Promise<Figures> {
  const client = new ChannelClient(rttChannel)
  for (let i = 0; i < 50; i++) await client.request({ ping: i })
  const rttUs: number[] = []
  for (let i = 0; i < sizes.requests; i++) {
    const start = performance.now()
    await client.request({ ping: i })
    rttUs.push((performance.now() - start) * 1000)
  }
  await pump(sinkChannel, Math.max(4, sizes.messages / 8)) // warm-up: congestion windows, JIT
  const mbps: number[] = []
  for (let r = 0; r < sizes.rounds; r++) mbps.push(await pump(sinkChannel, sizes.messages))
  return { rttUs: rttUs.sort((a, b) => a - b), mbps }
}

const echo = async (request: unknown): Promise<unknown> => ({ pong: (request as { ping: number }).ping })

async function webrtcFigures(sizes: { requests: number; messages: number; rounds: number }): Promise<Figures> {
  const served: WebRtcConnection[] = []
  const answerer = new WebRtcAnswerer({
    key: Ed25519KeyPair.generate(),
    onConnection: (connection) => {
      // the first connection answers requests, the second is the throughput sink
      if (served.length === 0) serveChannel(connection.channel, echo)
      else sink(connection.channel)
      served.push(connection)
    },
  })
  const offerer = new WebRtcOfferer({ key: Ed25519KeyPair.generate() })
  const replay = new ReplayCache()
  const signal = async (offer: unknown): Promise<unknown> =>
    answerer.answer(verifyOffer(offer, { self: answerer.did, now: Date.now(), replay }))
  try {
    const rtt = await offerer.connect(answerer.did, signal)
    const bulk = await offerer.connect(answerer.did, signal)
    while (served.length < 2) await sleep(5)
    return await measureTransport(rtt.channel, bulk.channel, sizes)
  } finally {
    offerer.stop()
    answerer.stop()
  }
}

async function libp2pHost(): Promise<DonghaeHost> {
  const host = await createHost({
    key: Ed25519KeyPair.generate(),
    host: '127.0.0.1',
    port: 0,
    quic: false,
    webSockets: false,
    webrtc: false,
    mdns: false,
    nat: 'off',
    relay: 'off',
  })
  await host.start()
  return host
}

async function libp2pFigures(sizes: { requests: number; messages: number; rounds: number }): Promise<Figures> {
  const a = await libp2pHost()
  const b = await libp2pHost()
  try {
    await b.handle(RTT_PROTOCOL, (stream) => void serveChannel(streamChannel(stream), echo))
    await b.handle(SINK_PROTOCOL, (stream) => sink(streamChannel(stream)))
    const address = b.getMultiaddrs()[0]
    if (address === undefined) throw new Error('the libp2p host has no address')
    const rtt = streamChannel(await a.dialProtocol(address, RTT_PROTOCOL))
    const bulk = streamChannel(await a.dialProtocol(address, SINK_PROTOCOL))
    return await measureTransport(rtt, bulk, sizes)
  } finally {
    await a.stop()
    await b.stop()
  }
}

/** A bench line with this bench's extra figures (round-trip p99, throughput). */
type WebRtcBenchLine = BenchLine & Record<string, unknown>

export async function webrtcBenches(quick = false): Promise<WebRtcBenchLine[]> {
  const sizes = quick ? { requests: 50, messages: 16, rounds: 1 } : { requests: 2_000, messages: 800, rounds: 5 }
  const webrtc = await webrtcFigures(sizes)
  const libp2p = await libp2pFigures(sizes)
  nodeDataChannel.cleanup()
  const p = (figures: Figures, q: number): number => Math.round(percentile(figures.rttUs, q))
  const best = (figures: Figures): number => Number(Math.max(...figures.mbps).toFixed(1))
  return [
    {
      ...line({
        bench: 'webrtc-channel',
        impl: 'node-datachannel data channel (ICE host, DTLS, SCTP), channel.ts request/response, loopback',
        value: p(webrtc, 50),
        unit: 'µs',
        baseline: { impl: 'libp2p stream (TCP, Noise, Yamux; createHost), same frames', value: p(libp2p, 50) },
        rounds: [p(webrtc, 50)],
      }),
      rttP99: {
        webrtc: p(webrtc, 99),
        libp2p: p(libp2p, 99),
        ratio: Number((p(webrtc, 99) / p(libp2p, 99)).toFixed(3)),
      },
      requests: sizes.requests,
      throughput: {
        unit: 'MB/s',
        messageBytes: MESSAGE_BYTES,
        messages: sizes.messages,
        webrtc: best(webrtc),
        libp2p: best(libp2p),
        ratio: Number((best(webrtc) / best(libp2p)).toFixed(3)),
        rounds: {
          webrtc: webrtc.mbps.map((v) => Number(v.toFixed(1))),
          libp2p: libp2p.mbps.map((v) => Number(v.toFixed(1))),
        },
      },
    },
  ]
}
