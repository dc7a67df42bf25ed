/**
 * libp2p protocol handlers, fuzzed as a peer: two real hosts on loopback TCP (Noise, Yamux), the
 * server running the real handlers on `Libp2pTransport` — the blob protocol (a stream per request,
 * `BlobStore.serve`) and the expert-call protocol (sessions: id ‖ kind ‖ payload frames,
 * `serveExperts`). An input's first byte picks the protocol; the rest is written raw on a new
 * stream (in one to three chunks, at the offsets the next bytes say), whatever the
 * length-prefixes and frames inside claim.
 *
 * Oracle: after every input the host still answers: a real blob request gets its bytes and a real
 * expert call its answer. The server's clock is a ManualClock moved past the ban time before each
 * input, so penalties the fuzzing peer earns (as it should) do not end the run.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ManualClock } from '../../../src/core/clock.ts'
import type { DonghaeHost } from '../../../src/net/host.ts'
import { loopbackHost } from '../../helpers/content.ts'
import { Libp2pTransport } from '../../../src/net/libp2p-transport.ts'
import { peerIdFromDid } from '../../../src/identity/peer-id.ts'
import { BAN_MS } from '../../../src/net/constants.ts'
import { BLOB_PROTOCOL, BlobStore } from '../../../src/inference/blobs.ts'
import { EXPERT_CALL_PROTOCOL, encodeCallRequest, serveExperts } from '../../../src/experts/net/protocol.ts'
import { decode } from '../../../src/core/codec.ts'
import { OracleViolation, describe, type FuzzTarget } from '../harness.ts'

const PROTOCOLS = [BLOB_PROTOCOL, EXPERT_CALL_PROTOCOL] as const
const BLOCK = 'ab'.repeat(32)
const BLOB = new TextEncoder().encode('a blob the fuzzing peer may fetch')

interface Pair {
  server: DonghaeHost
  client: DonghaeHost
  serverTransport: Libp2pTransport
  clientTransport: Libp2pTransport
  clock: ManualClock
  dir: string
  blobCid: string
}

let pair: Pair | undefined

const callRequest = (deadlineMs = 1_000): Uint8Array =>
  encodeCallRequest({
    family: 'tiny-moe',
    version: 1,
    block: BLOCK,
    layer: 0,
    expert: 1,
    rows: 1,
    dModel: 2,
    input: new Uint8Array(new Float32Array([0.5, -1]).buffer),
    deadlineMs,
  })

async function openPair(): Promise<Pair> {
  const dir = mkdtempSync(join(tmpdir(), 'donghae-fuzz-p2p-'))
  const clock = new ManualClock(1_700_000_000_000)
  const [server, client] = [await loopbackHost(), await loopbackHost()]
  const serverTransport = new Libp2pTransport(server, { chainId: 'fuzz', clock })
  const clientTransport = new Libp2pTransport(client, { chainId: 'fuzz' })
  serverTransport.start()
  clientTransport.start()
  const blobs = new BlobStore(join(dir, 'blobs'))
  await blobs.init()
  const blobCid = await blobs.put(BLOB)
  blobs.serve(serverTransport)
  serveExperts({
    transport: serverTransport,
    hosts: (block) => block === BLOCK,
    run: async (call) => new Float32Array(call.rows * call.dModel).fill(1),
  })
  await client.dial(server.getMultiaddrs()[0] as never)
  return { server, client, serverTransport, clientTransport, clock, dir, blobCid }
}

function varint(n: number): Uint8Array {
  const out: number[] = []
  do {
    out.push((n & 0x7f) | (n >= 0x80 ? 0x80 : 0))
    n = Math.floor(n / 128)
  } while (n > 0)
  return new Uint8Array(out)
}

function lp(payload: Uint8Array): Uint8Array {
  const prefix = varint(payload.length)
  const out = new Uint8Array(prefix.length + payload.length)
  out.set(prefix)
  out.set(payload, prefix.length)
  return out
}

function sessionFrame(id: number, kind: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length)
  new DataView(out.buffer).setUint32(0, id)
  out[4] = kind
  out.set(payload, 5)
  return out
}

/** The host answers a real blob request and a real expert call. */
async function probe(p: Pair, after: string): Promise<void> {
  const signal = AbortSignal.timeout(5_000)
  try {
    const blob = decode<{ bytes?: Uint8Array }>(
      await p.clientTransport.request(p.serverTransport.self, BLOB_PROTOCOL, new TextEncoder().encode(p.blobCid), {
        signal,
      }),
    )
    if (blob.bytes?.length !== BLOB.length) throw new Error('the blob came back wrong')
    const answer = await p.clientTransport.request(p.serverTransport.self, EXPERT_CALL_PROTOCOL, callRequest(), {
      signal,
      session: true,
    })
    if (answer.length === 0) throw new Error('an empty expert answer')
  } catch (err) {
    throw new OracleViolation(`the host stopped answering after ${after}: ${describe(err)}`)
  }
}

async function send(p: Pair, input: Uint8Array): Promise<string> {
  // penalties and bans the previous inputs earned (rightly) are over
  p.clock.advance(BAN_MS + 3_600_000)
  const protocol = PROTOCOLS[(input[0] ?? 0) % PROTOCOLS.length] as string
  const body = input.subarray(Math.min(input.length, 3))
  const cuts = [input[1] ?? 255, input[2] ?? 255].map((b) => Math.floor((b / 255) * body.length)).sort((a, b) => a - b)
  let outcome = 'sent'
  const serverPeer = peerIdFromDid(p.serverTransport.self)
  const stream = await p.client.dialProtocol(serverPeer, protocol, { signal: AbortSignal.timeout(3_000) })
  try {
    const signal = AbortSignal.timeout(1_000)
    let at = 0
    for (const cut of [...cuts, body.length]) {
      if (cut > at) stream.send(body.subarray(at, cut))
      at = Math.max(at, cut)
    }
    await stream.close({ signal })
    let got = 0
    for await (const chunk of stream) {
      got += chunk.byteLength
      if (got > 1 << 20) break
    }
    outcome = got === 0 ? 'no answer' : 'answered'
  } catch (err) {
    outcome = `ended: ${err instanceof Error ? err.name : typeof err}`
    stream.abort(err instanceof Error ? err : new Error(String(err)))
  }
  await probe(p, `${protocol} ← ${body.length} bytes`)
  return `${protocol} ${outcome}`
}

export const p2pTarget: FuzzTarget = {
  name: 'p2p',
  description: 'libp2p protocol handlers (blob, expert-call sessions) on real hosts, fed raw streams by a peer',
  async open() {
    pair ??= await openPair()
  },
  async close() {
    if (pair === undefined) return
    pair.clientTransport.stop()
    pair.serverTransport.stop()
    await pair.client.stop()
    await pair.server.stop()
    rmSync(pair.dir, { recursive: true, force: true })
    pair = undefined
  },
  async seeds() {
    await p2pTarget.open?.()
    const cid = new TextEncoder().encode((pair as Pair).blobCid)
    const head = (protocol: number): number[] => [protocol, 128, 255]
    const cat = (h: number[], ...parts: Uint8Array[]): Uint8Array => {
      const out = new Uint8Array(h.length + parts.reduce((a, x) => a + x.length, 0))
      out.set(h)
      let at = h.length
      for (const x of parts) {
        out.set(x, at)
        at += x.length
      }
      return out
    }
    return [
      cat(head(0), lp(cid)),
      cat(head(0), lp(new TextEncoder().encode('not a cid'))),
      cat(head(1), lp(sessionFrame(0, 0, callRequest())), lp(sessionFrame(1, 0, callRequest(5)))),
      cat(head(1), lp(sessionFrame(7, 1, callRequest()))),
    ]
  },
  run: async (input) => {
    if (pair === undefined) throw new Error('the p2p target is not open')
    return send(pair, input)
  },
  timeoutMs: 8_000,
  maxInputBytes: 8 * 1024,
}
