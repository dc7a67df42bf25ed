// The data channel's handler (info, chat) over an in-memory channel pair and a test double of
// InferenceApi; the real thing (node-datachannel, a node process, its language model) is in
// test/webrtc-node.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fakeInference } from '../api/fake-inference.ts'
import { InferenceError } from '../inference/errors.ts'
import { ChannelClient, serveChannel, type ChannelRequestError } from '../net/webrtc/channel.ts'
import type { MessageChannel } from '../net/webrtc/peer.ts'
import { channelHandler, parseChatRequest } from './webrtc.ts'

const DID = 'did:key:z6MkthisNode'

/** Two ends of a channel; `sent` logs what the first end (the server) sent. */
function memoryPair(sent: string[] = []): [MessageChannel, MessageChannel] {
  let open = true
  const listeners = { a: [] as ((t: string) => void)[], b: [] as ((t: string) => void)[], closed: [] as (() => void)[] }
  const side = (self: 'a' | 'b', other: 'a' | 'b'): MessageChannel => ({
    send: (text) => {
      if (!open) return false
      if (self === 'a') sent.push(text)
      setImmediate(() => {
        if (open) for (const listener of listeners[other]) listener(text)
      })
      return true
    },
    onMessage: (listener) => void listeners[self].push(listener),
    onClosed: (listener) => void listeners.closed.push(listener),
    isOpen: () => open,
    bufferedAmount: () => 0,
    maxMessageSize: () => 256 * 1024,
    close: () => {
      open = false
      for (const listener of listeners.closed) queueMicrotask(listener)
    },
  })
  return [side('a', 'b'), side('b', 'a')]
}

function setup(limits: { maxChats?: number } = {}) {
  const inference = fakeInference()
  const sent: string[] = []
  const [server, client] = memoryPair(sent)
  serveChannel(server, channelHandler(DID, inference, limits))
  return { inference, calls: new ChannelClient(client), sent }
}

const refusedWith =
  (code: string, pattern = /./) =>
  (err: ChannelRequestError) =>
    err.remoteCode === code && pattern.test(err.message)

test('info: the node’s DID and the models chat can run, language models first', async () => {
  const { calls } = setup()
  assert.deepEqual(await calls.request({ op: 'info' }), {
    did: DID,
    models: [
      { name: 'tiny-lm', kind: 'lm', contextLength: 512, workers: 1 },
      { name: 'chars', kind: 'text', workers: 1 },
    ],
  })
})

test('chat: streams each piece as a progress frame, then the answer; the first language model by default', async () => {
  const { inference, calls } = setup()
  const tokens: unknown[] = []
  const answer = await calls.request(
    { op: 'chat', messages: [{ role: 'user', content: 'hi' }], max_tokens: 12, temperature: 0.5 },
    { onProgress: (p) => tokens.push(p) },
  )
  assert.deepEqual(tokens, [{ token: 'Hello' }, { token: ' world' }])
  assert.deepEqual(answer, {
    text: 'Hello world',
    finishReason: 'stop',
    completionTokens: 2,
    promptTokens: 7,
    model: 'tiny-lm',
  })
  assert.deepEqual(inference.calls.complete[0], {
    model: 'tiny-lm',
    messages: [{ role: 'user', content: 'hi' }],
    maxTokens: 12,
    temperature: 0.5,
  })
  await calls.request({ op: 'chat', model: 'chars', prompt: 'abc' })
  assert.deepEqual(inference.calls.complete[1], { model: 'chars', prompt: 'abc' })
})

test('bad requests are refused field by field, before any job', async () => {
  const { inference, calls } = setup()
  await assert.rejects(calls.request({ op: 'shell' }), refusedWith('BAD_REQUEST', /op must be/))
  await assert.rejects(calls.request('info'), refusedWith('BAD_REQUEST'))
  await assert.rejects(calls.request({ op: 'chat', prompt: 'x', tools: [] }), refusedWith('BAD_REQUEST', /tools/))
  await assert.rejects(
    calls.request({ op: 'chat', prompt: 'x', messages: [{ role: 'user', content: 'y' }] }),
    refusedWith('BAD_REQUEST', /either/),
  )
  await assert.rejects(
    calls.request({ op: 'chat', prompt: 'x', temperature: 99 }),
    refusedWith('BAD_REQUEST', /temperature/),
  )
  await assert.rejects(
    calls.request({ op: 'chat', prompt: 'x', max_tokens: 0 }),
    refusedWith('BAD_REQUEST', /max_tokens/),
  )
  await assert.rejects(
    calls.request({ op: 'chat', messages: [{ role: 'tool', content: 'y' }] }),
    refusedWith('BAD_REQUEST', /tool/),
  )
  assert.equal(inference.calls.complete.length, 0)
  assert.throws(() => parseChatRequest({ op: 'chat', model: 7, prompt: 'x' }), /model/)
})

test('inference failures answer with the HTTP API’s codes; internals do not leak', async () => {
  const { inference, calls } = setup()
  inference.completeWith(async () => {
    throw new InferenceError('unknown-model', 'unknown model "nope"')
  })
  await assert.rejects(calls.request({ op: 'chat', model: 'nope', prompt: 'x' }), refusedWith('NOT_FOUND', /nope/))
  inference.completeWith(async () => {
    throw new Error('/home/secret exploded')
  })
  await assert.rejects(
    calls.request({ op: 'chat', prompt: 'x' }),
    (err: ChannelRequestError) => err.remoteCode === 'INTERNAL' && !err.message.includes('secret'),
  )
})

test('cancel ends the request at once: no more frames reach the client', async () => {
  const { inference, calls, sent } = setup()
  let release = (): void => {}
  let emit: (piece: string) => void = () => {}
  inference.completeWith(async (_request, onToken) => {
    emit = (piece) => onToken?.(piece)
    emit('first')
    await new Promise<void>((resolve) => (release = resolve))
    emit('late')
    return { text: 'first late', receipts: [], finishReason: 'length', promptTokens: 1, completionTokens: 2 }
  })
  const controller = new AbortController()
  const seen: unknown[] = []
  const pending = calls.request(
    { op: 'chat', prompt: 'x' },
    {
      signal: controller.signal,
      onProgress: (p) => {
        seen.push(p)
        controller.abort()
      },
    },
  )
  await assert.rejects(pending, refusedWith('ABORTED'))
  await new Promise((resolve) => setImmediate(resolve))
  release()
  await new Promise((resolve) => setTimeout(resolve, 20))
  assert.deepEqual(seen, [{ token: 'first' }])
  assert.deepEqual(
    sent,
    [JSON.stringify({ t: 'progress', id: 1, body: { token: 'first' } })],
    'the server sent nothing after the cancel',
  )
  // the channel still serves
  assert.equal(((await calls.request({ op: 'info' })) as { did: string }).did, DID)
})

test('the node runs at most maxChats chats at once; a cancelled one keeps its slot until its job ends', async () => {
  const { inference, calls } = setup({ maxChats: 1 })
  let release = (): void => {}
  inference.completeWith(async () => {
    await new Promise<void>((resolve) => (release = resolve))
    return { text: 'x', receipts: [], finishReason: 'stop', promptTokens: 1, completionTokens: 1 }
  })
  const controller = new AbortController()
  const first = calls.request({ op: 'chat', prompt: 'a' }, { signal: controller.signal })
  while (inference.calls.complete.length === 0) await new Promise((resolve) => setImmediate(resolve))
  await assert.rejects(calls.request({ op: 'chat', prompt: 'b' }), refusedWith('BUSY', /at most 1/))
  controller.abort()
  await assert.rejects(first, refusedWith('ABORTED'))
  await assert.rejects(calls.request({ op: 'chat', prompt: 'c' }), refusedWith('BUSY'), 'the job still runs')
  release()
  await new Promise((resolve) => setTimeout(resolve, 5))
  inference.completeWith(async () => ({
    text: 'ok',
    receipts: [],
    finishReason: 'stop',
    promptTokens: 1,
    completionTokens: 1,
  }))
  assert.equal(((await calls.request({ op: 'chat', prompt: 'd' })) as { text: string }).text, 'ok')
  assert.equal(((await calls.request({ op: 'info' })) as { did: string }).did, DID, 'info is never refused as busy')
})
