// The channel protocol over an in-memory pair of MessageChannels (peer.test.ts runs it over real
// WebRTC data channels).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { InvalidInputError } from '../../core/errors.ts'
import { ChannelClient, serveChannel, type ChannelRequestError } from './channel.ts'
import type { MessageChannel } from './peer.ts'

function memoryPair(maxMessageSize = 256 * 1024): [MessageChannel, MessageChannel, { sent: string[] }] {
  const log = { sent: [] as string[] }
  let open = true
  const make = () => ({ message: [] as ((t: string) => void)[], closed: [] as (() => void)[] })
  const a = make()
  const b = make()
  const close = (): void => {
    if (!open) return
    open = false
    for (const listener of [...a.closed, ...b.closed]) queueMicrotask(listener)
  }
  const side = (self: ReturnType<typeof make>, other: ReturnType<typeof make>): MessageChannel => ({
    send: (text) => {
      if (!open) return false
      log.sent.push(text)
      setImmediate(() => {
        if (open) for (const listener of other.message) listener(text)
      })
      return true
    },
    onMessage: (listener) => void self.message.push(listener),
    onClosed: (listener) => void self.closed.push(listener),
    isOpen: () => open,
    bufferedAmount: () => 0,
    maxMessageSize: () => maxMessageSize,
    close,
  })
  return [side(a, b), side(b, a), log]
}

test('a request streams partial answers, then resolves; errors carry the server code', async () => {
  const [server, client] = memoryPair()
  serveChannel(server, async (request, { progress }) => {
    const { n, fail } = request as { n: number; fail?: boolean }
    for (let i = 0; i < n; i++) await progress({ token: `t${i}` })
    if (fail === true) throw new InvalidInputError('no such model')
    return { done: n }
  })
  const calls = new ChannelClient(client)
  const seen: unknown[] = []
  assert.deepEqual(await calls.request({ n: 3 }, { onProgress: (p) => seen.push(p) }), { done: 3 })
  assert.deepEqual(seen, [{ token: 't0' }, { token: 't1' }, { token: 't2' }])
  await assert.rejects(
    calls.request({ n: 1, fail: true }),
    (err: ChannelRequestError) => err.remoteCode === 'INVALID_INPUT' && /no such model/.test(err.message),
  )
  // concurrent requests are told apart by id
  const results = await Promise.all([1, 2, 3, 4].map((n) => calls.request({ n })))
  assert.deepEqual(results, [{ done: 1 }, { done: 2 }, { done: 3 }, { done: 4 }])
})

test('a non-Donghae handler error does not leak its message', async () => {
  const [server, client] = memoryPair()
  serveChannel(server, async () => {
    throw new Error('/home/secret/path exploded')
  })
  await assert.rejects(
    new ChannelClient(client).request({}),
    (err: ChannelRequestError) => err.remoteCode === 'HANDLER_ERROR' && !err.message.includes('secret'),
  )
})

test('in-flight limits: the server answers BUSY, the client refuses beyond its own bound', async () => {
  const [server, client] = memoryPair()
  const release: (() => void)[] = []
  serveChannel(server, () => new Promise((resolve) => release.push(() => resolve('ok'))), { maxInFlight: 2 })
  const calls = new ChannelClient(client, { maxInFlight: 3 })
  const first = [calls.request(1), calls.request(2)]
  const third = calls.request(3)
  await assert.rejects(calls.request(4), (err: ChannelRequestError) => err.remoteCode === 'BUSY')
  await assert.rejects(third, (err: ChannelRequestError) => err.remoteCode === 'BUSY')
  while (release.length < 2) await new Promise((resolve) => setImmediate(resolve))
  for (const r of release) r()
  assert.deepEqual(await Promise.all(first), ['ok', 'ok'])
})

test('size limits: oversized requests are refused locally, oversized answers become TOO_LARGE', async () => {
  const [server, client] = memoryPair()
  serveChannel(server, async (request) => 'x'.repeat(request as number), { maxMessageBytes: 1024 })
  const calls = new ChannelClient(client, { maxMessageBytes: 1024 })
  await assert.rejects(calls.request('y'.repeat(2000)), (err: ChannelRequestError) => err.remoteCode === 'TOO_LARGE')
  assert.equal(await calls.request(10), 'x'.repeat(10))
  await assert.rejects(calls.request(5000), (err: ChannelRequestError) => err.remoteCode === 'TOO_LARGE')
})

test('a protocol violation closes the channel and aborts running handlers; clients see CLOSED', async () => {
  const [server, client] = memoryPair()
  let aborted = false
  serveChannel(server, (_request, { signal }) => {
    return new Promise((_resolve, reject) => {
      signal.addEventListener('abort', () => {
        aborted = true
        reject(new Error('aborted'))
      })
    })
  })
  const calls = new ChannelClient(client)
  const pending = calls.request('slow')
  await new Promise((resolve) => setImmediate(resolve))
  client.send('not json')
  await assert.rejects(pending, (err: ChannelRequestError) => err.remoteCode === 'CLOSED')
  assert.equal(aborted, true)
  assert.equal(server.isOpen(), false)
})

test('cancel and timeout abort the handler', async () => {
  const [server, client] = memoryPair()
  const aborts: unknown[] = []
  serveChannel(server, (request, { signal }) => {
    return new Promise((_resolve, reject) => {
      signal.addEventListener('abort', () => {
        aborts.push(request)
        reject(new Error('aborted'))
      })
    })
  })
  const calls = new ChannelClient(client)
  const controller = new AbortController()
  const cancelled = calls.request('a', { signal: controller.signal })
  await new Promise((resolve) => setImmediate(resolve))
  controller.abort()
  await assert.rejects(cancelled, (err: ChannelRequestError) => err.remoteCode === 'ABORTED')
  await assert.rejects(
    calls.request('b', { timeoutMs: 20 }),
    (err: ChannelRequestError) => err.remoteCode === 'TIMEOUT',
  )
  while (aborts.length < 2) await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(aborts, ['a', 'b'])
  assert.equal(calls.inFlight, 0)
})
