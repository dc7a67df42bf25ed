import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { createLogger } from './logger.ts'
import { InvalidInputError } from './errors.ts'

function capture(): { stream: Writable; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString())
      cb()
    },
  })
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  }
}

test('component loggers write structured lines carrying their namespace', () => {
  const out = capture()
  const root = createLogger({ level: 'debug', destination: out.stream })
  const bft = root.forComponent('donghae:chain').forComponent('donghae:chain:bft')
  bft.info({ height: 7 }, 'committed')
  root.debug('root line')
  const [first, second] = out.lines()
  assert.equal(first?.component, 'donghae:chain:bft')
  assert.equal(first?.height, 7)
  assert.equal(first?.msg, 'committed')
  assert.equal(second?.msg, 'root line')
})

test('levels filter lines and bad component names are refused', () => {
  const out = capture()
  const log = createLogger({ level: 'warn', destination: out.stream })
  log.info('dropped')
  log.warn('kept')
  assert.deepEqual(
    out.lines().map((l) => l.msg),
    ['kept'],
  )
  assert.throws(() => log.forComponent('Chain BFT'), InvalidInputError)
})
