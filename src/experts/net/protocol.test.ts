import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { DecodeError } from '../../core/errors.ts'
import { MemoryHub } from '../../net/memory-transport.ts'
import {
  bytesToFloats,
  decodeCallAnswer,
  decodeCallRequest,
  encodeCallAnswer,
  encodeCallRequest,
  EXPERT_CALL_PROTOCOL,
  floatsToBytes,
  MAX_CALL_BYTES,
  serveExperts,
  type ExpertCallRequest,
} from './protocol.ts'
import { BadAnswerError, ExpertDeadlineError, ExpertRunError, NotHostedError } from './errors.ts'
import { testBlock } from './swarm.ts'

function request(overrides: Partial<ExpertCallRequest> = {}): ExpertCallRequest {
  const rows = overrides.rows ?? 2
  const dModel = overrides.dModel ?? 3
  return {
    family: 'moby-moe',
    version: 1,
    block: testBlock('layer0.expert1'),
    layer: 0,
    expert: 1,
    rows,
    dModel,
    input: floatsToBytes(new Float32Array(rows * dModel).map((_, i) => i / 2)),
    deadlineMs: 1_000,
    ...overrides,
  }
}

test('a request and an answer round-trip; floats are little-endian', () => {
  const r = request()
  assert.deepEqual(decodeCallRequest(encodeCallRequest(r)), r)
  const floats = new Float32Array([1.5, -2, 3.25])
  const bytes = floatsToBytes(floats)
  assert.deepEqual([...bytes.subarray(0, 4)], [0, 0, 0xc0, 0x3f])
  assert.deepEqual(bytesToFloats(bytes), floats)
  assert.deepEqual(decodeCallAnswer(encodeCallAnswer(floats), 1, 3), floats)
  // Unaligned bytes decode too.
  const shifted = new Uint8Array(13)
  shifted.set(bytes, 1)
  assert.deepEqual(bytesToFloats(shifted.subarray(1)), floats)
})

test('request decoding is strict and bounded', () => {
  const raw = (value: Record<string, unknown>): Uint8Array => dagCbor.encode(value)
  const good = request() as unknown as Record<string, unknown>
  const bad: Array<[string, Record<string, unknown>]> = [
    ['rows over 4096', { ...good, rows: 4097, input: new Uint8Array(4097 * 3 * 4) }],
    ['dModel over 16384', { ...good, rows: 1, dModel: 16_385, input: new Uint8Array(16_385 * 4) }],
    ['bytes ≠ rows·dModel·4', { ...good, input: new Uint8Array(20) }],
    ['rows·dModel over the size limit', { ...good, rows: 4096, dModel: 1025, input: new Uint8Array(0) }],
    ['zero rows', { ...good, rows: 0, input: new Uint8Array(0) }],
    ['a fractional layer', { ...good, layer: 1.5 }],
    ['a negative expert', { ...good, expert: -1 }],
    ['a block that is not a hash', { ...good, block: 'layer0.expert1' }],
    ['an empty family', { ...good, family: '' }],
    ['a deadline of 0', { ...good, deadlineMs: 0 }],
    ['a deadline over a minute', { ...good, deadlineMs: 60_001 }],
    ['input as a string', { ...good, input: 'AAAA' }],
    ['an extra key', { ...good, extra: 1 }],
  ]
  for (const [what, value] of bad) assert.throws(() => decodeCallRequest(raw(value)), DecodeError, what)
  const missing = { ...good }
  delete missing.deadlineMs
  assert.throws(() => decodeCallRequest(raw(missing)), DecodeError, 'a missing key')
  assert.throws(() => decodeCallRequest(raw({ list: [1] }).subarray(1)), DecodeError, 'not a map')
  assert.throws(() => decodeCallRequest(new Uint8Array(MAX_CALL_BYTES + 1)), DecodeError, 'over 16 MiB')
  assert.throws(() => decodeCallRequest(new Uint8Array([0x82, 1, 2])), DecodeError, 'an array')
  // Non-canonical: a length with a non-minimal encoding.
  const canonical = encodeCallRequest(request())
  const nonCanonical = new Uint8Array([0xb9, 0x00, 0x09, ...canonical.subarray(1)])
  assert.throws(() => decodeCallRequest(nonCanonical), DecodeError, 'non-canonical')
  // The encoder refuses what the decoder would.
  assert.throws(() => encodeCallRequest(request({ input: new Uint8Array(4) })), DecodeError)
})

test('answer decoding refuses a wrong size, extra keys and values that are not finite', () => {
  assert.throws(() => decodeCallAnswer(encodeCallAnswer(new Float32Array(5)), 2, 3), BadAnswerError)
  assert.throws(() => decodeCallAnswer(encodeCallAnswer(new Float32Array([1, Number.NaN])), 1, 2), BadAnswerError)
  assert.throws(() => decodeCallAnswer(encodeCallAnswer(new Float32Array([Infinity])), 1, 1), BadAnswerError)
  assert.throws(() => decodeCallAnswer(dagCbor.encode({ output: new Uint8Array(4), x: 1 }), 1, 1), BadAnswerError)
  assert.throws(() => decodeCallAnswer(new Uint8Array([0xff]), 1, 1), BadAnswerError)
})

test('serveExperts answers hosted blocks and refuses the rest with typed errors', async () => {
  const hub = new MemoryHub()
  const server = hub.join('did:server')
  const client = hub.join('did:client')
  const hosted = testBlock('layer0.expert1')
  let mode: 'ok' | 'hang' | 'fail' | 'short' = 'ok'
  const stats = serveExperts({
    transport: server,
    hosts: (block) => block === hosted,
    run: (call, signal) => {
      assert.equal(call.from, 'did:client')
      if (mode === 'hang')
        return new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted'))))
      if (mode === 'fail') return Promise.reject(new Error('boom'))
      if (mode === 'short') return Promise.resolve(new Float32Array(1))
      return Promise.resolve(call.input.map((x) => x + 1))
    },
  })
  const ask = (r: ExpertCallRequest): Promise<Uint8Array> =>
    client.request('did:server', EXPERT_CALL_PROTOCOL, encodeCallRequest(r), { session: true })
  const answer = decodeCallAnswer(await ask(request()), 2, 3)
  assert.deepEqual([...answer], [1, 1.5, 2, 2.5, 3, 3.5])

  const causeOf = async (p: Promise<unknown>): Promise<unknown> => {
    try {
      await p
    } catch (err) {
      return (err as { cause?: unknown }).cause
    }
    assert.fail('expected a refusal')
  }
  assert.ok((await causeOf(ask(request({ block: testBlock('other') })))) instanceof NotHostedError)
  mode = 'hang'
  assert.ok((await causeOf(ask(request({ deadlineMs: 20 })))) instanceof ExpertDeadlineError)
  mode = 'fail'
  assert.ok((await causeOf(ask(request()))) instanceof ExpertRunError)
  mode = 'short'
  assert.ok((await causeOf(ask(request()))) instanceof ExpertRunError)
  const malformed = await causeOf(client.request('did:server', EXPERT_CALL_PROTOCOL, new Uint8Array([1, 2, 3])))
  assert.ok(malformed instanceof DecodeError)
  assert.equal((malformed as DecodeError).action, 'reject')
  assert.deepEqual(stats, { served: 1, refused: 4, malformed: 1, inFlight: 0 })
})
