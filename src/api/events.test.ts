import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { InvalidInputError } from '../core/errors.ts'
import { EventBus, parseEventTypes, type NodeEvent } from './events.ts'
import { SseParser } from './sse.ts'
import { formatEvent } from './routes/events.ts'

const block = (height: number) => ({ height, id: 'ab', time: 1, txs: 0, proposer: 'did:key:z6Mk' })

test('EventBus: subscribers get what they asked for, in order, with growing seq', async () => {
  const bus = new EventBus()
  const all = bus.subscribe()
  const blocks = bus.subscribe({ types: ['block'] })
  bus.publish('block', block(1))
  bus.publish('peer', { peerId: 'p', did: '', connected: true, peers: 1 })
  bus.publish('block', block(2))
  const first = await all.next()
  assert.deepEqual(first.value, { seq: 1, type: 'block', data: block(1) })
  assert.equal((await all.next()).value?.type, 'peer')
  assert.deepEqual(
    [(await blocks.next()).value?.seq, (await blocks.next()).value?.seq],
    [1, 3],
    'the filter skips the peer event',
  )
  assert.equal(bus.seq, 3)
  assert.equal(bus.subscriberCount, 2)
  all.close()
  assert.equal(bus.subscriberCount, 1)
  assert.equal((await all.next()).done, true)
})

test('EventBus: a slow subscriber keeps only its newest events and learns how many it lost', async () => {
  const bus = new EventBus()
  const slow = bus.subscribe({ bufferSize: 3 })
  for (let h = 1; h <= 10; h++) bus.publish('block', block(h))
  const got: number[] = []
  for (let i = 0; i < 3; i++) got.push(((await slow.next()).value as NodeEvent<'block'>).data.height)
  assert.deepEqual(got, [8, 9, 10])
  assert.equal(slow.takeDropped(), 7)
  assert.equal(slow.takeDropped(), 0)
  slow.close()
})

test('EventBus: a waiting reader is woken by publish and by close; abort signals end subscriptions', async () => {
  const bus = new EventBus()
  const sub = bus.subscribe()
  const pending = sub.next()
  bus.publish('nat', { method: 'off', reason: 'off' })
  assert.equal((await pending).value?.type, 'nat')
  const waiting = sub.next()
  sub.close()
  assert.equal((await waiting).done, true)

  const abort = new AbortController()
  const viaSignal = bus.subscribe({ signal: abort.signal })
  const collected: NodeEvent[] = []
  const loop = (async () => {
    for await (const e of viaSignal) collected.push(e)
  })()
  bus.publish('block', block(1))
  await new Promise((r) => setImmediate(r))
  abort.abort()
  await loop
  assert.equal(collected.length, 1)
  bus.publish('block', block(2))
  assert.equal(collected.length, 1, 'nothing after the end')

  const aborted = new AbortController()
  aborted.abort()
  assert.equal((await bus.subscribe({ signal: aborted.signal }).next()).done, true)
})

test('EventBus: `after` replays remembered events (Last-Event-ID); a throwing listener harms no one', async () => {
  const bus = new EventBus({ history: 4 })
  bus.on(() => {
    throw new Error('broken listener')
  })
  for (let h = 1; h <= 6; h++) bus.publish('block', block(h))
  const resumed = bus.subscribe({ after: 4 })
  assert.deepEqual([(await resumed.next()).value?.seq, (await resumed.next()).value?.seq], [5, 6])
  const tooOld = bus.subscribe({ after: 0 })
  assert.equal((await tooOld.next()).value?.seq, 3, 'history keeps the last 4')
  resumed.close()
  tooOld.close()
})

test('parseEventTypes: a list of known types, or InvalidInputError naming the allowed ones', () => {
  assert.equal(parseEventTypes(undefined), undefined)
  assert.equal(parseEventTypes(' '), undefined)
  assert.deepEqual(parseEventTypes('block, job'), ['block', 'job'])
  assert.throws(
    () => parseEventTypes('block,blocks'),
    (err) => {
      assert.ok(err instanceof InvalidInputError)
      assert.match(err.message, /"blocks".*block, finality, job, peer, nat, slash/)
      return true
    },
  )
})

test('SseParser: the messages formatEvent writes come back whole, however the stream is cut', () => {
  const event = fc.record({
    seq: fc.integer({ min: 1, max: 1e9 }),
    height: fc.integer({ min: 0, max: 1e6 }),
    proposer: fc.string(),
  })
  fc.assert(
    fc.property(
      fc.array(event, { minLength: 1, maxLength: 5 }),
      fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
      fc.constantFrom('\n', '\r\n', '\r'),
      (events, cuts, eol) => {
        const text =
          ': hello\n\n' +
          events
            .map((e) => formatEvent({ seq: e.seq, type: 'block', data: { ...block(e.height), proposer: e.proposer } }))
            .join(': heartbeat\n\n')
            .replace(/\n/g, eol)
        const parser = new SseParser()
        const out = []
        let at = 0
        for (const cut of [...cuts, text.length]) {
          out.push(...parser.push(text.slice(at, at + cut)))
          at += cut
          if (at >= text.length) break
        }
        if (at < text.length) out.push(...parser.push(text.slice(at)))
        assert.deepEqual(
          out.map((m) => [m.event, m.id, JSON.parse(m.data) as unknown]),
          events.map((e) => ['block', String(e.seq), { ...block(e.height), proposer: e.proposer }]),
        )
      },
    ),
  )
})

test('SseParser: data lines join with newlines, id carries over, retry is read, other fields ignored', () => {
  const parser = new SseParser()
  const out = parser.push('retry: 500\nid: 7\ndata: a\ndata:b\nfoo: bar\n\nevent: x\ndata\n\n')
  assert.deepEqual(out, [
    { event: 'message', data: 'a\nb', id: '7' },
    { event: 'x', data: '', id: '7' },
  ])
  assert.equal(parser.retryMs, 500)
})
