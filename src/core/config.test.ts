import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig, defaultConfig } from './config.ts'
import { ConfigError } from './errors.ts'

function withFile(contents: string, fn: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'donghae-config-'))
  try {
    const path = join(dir, 'config.json')
    writeFileSync(path, contents)
    fn(path)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

test('precedence is flags > env > file > defaults, and each value reports its source', () => {
  withFile(JSON.stringify({ logLevel: 'error', moniker: 'from-file' }), (file) => {
    const onlyFile = loadConfig({ file, env: {} })
    assert.equal(onlyFile.config.logLevel, 'error')
    assert.equal(onlyFile.sources.logLevel, 'file')

    const envWins = loadConfig({ file, env: { DONGHAE_LOG_LEVEL: 'debug' } })
    assert.equal(envWins.config.logLevel, 'debug')
    assert.equal(envWins.sources.logLevel, 'env')
    assert.equal(envWins.config.moniker, 'from-file')

    const flagWins = loadConfig({ file, env: { DONGHAE_LOG_LEVEL: 'debug' }, flags: { logLevel: 'trace' } })
    assert.equal(flagWins.config.logLevel, 'trace')
    assert.equal(flagWins.sources.logLevel, 'flag')
  })
  const defaults = loadConfig({ env: {} })
  assert.equal(defaults.config.logLevel, defaultConfig().logLevel)
  assert.equal(defaults.sources.moniker, 'default')
})

test('a missing config file means defaults', () => {
  assert.equal(loadConfig({ file: '/nonexistent/donghae/config.json', env: {} }).sources.logLevel, 'default')
})

test('invalid values name the key, the source and what is expected', () => {
  assert.throws(
    () => loadConfig({ env: { DONGHAE_LOG_LEVEL: 'loud' } }),
    (err: unknown) =>
      err instanceof ConfigError &&
      err.message.includes('logLevel') &&
      err.message.includes('DONGHAE_LOG_LEVEL') &&
      err.message.includes('expected one of trace'),
  )
  assert.throws(
    () => loadConfig({ env: {}, flags: { moniker: '' } }),
    (err: unknown) => err instanceof ConfigError && err.message.includes('--moniker'),
  )
})

test('bad config files are rejected clearly: not JSON, not an object, unknown keys, wrong types', () => {
  withFile('{"logLevel": ', (file) => assert.throws(() => loadConfig({ file, env: {} }), /not valid JSON/))
  withFile('[1,2]', (file) => assert.throws(() => loadConfig({ file, env: {} }), /must hold a JSON object/))
  withFile('{"logLevle": "info"}', (file) =>
    assert.throws(
      () => loadConfig({ file, env: {} }),
      (err: unknown) => err instanceof ConfigError && /unknown key "logLevle"/.test(err.message),
    ),
  )
  withFile('{"moniker": 42}', (file) => assert.throws(() => loadConfig({ file, env: {} }), /config file/))
})

test('apiRateLimit: 1200 a minute by default, raised from the environment, refused when not a positive count', () => {
  assert.equal(loadConfig({ env: {} }).config.apiRateLimit, 1_200)
  assert.equal(loadConfig({ env: { DONGHAE_API_RATE_LIMIT: '50000' } }).config.apiRateLimit, 50_000)
  for (const bad of ['0', '-5', 'lots', '1.5'])
    assert.throws(
      () => loadConfig({ env: { DONGHAE_API_RATE_LIMIT: bad } }),
      (err: unknown) => err instanceof ConfigError && err.message.includes('apiRateLimit'),
      bad,
    )
})

test('the default config listens on no port twice: ws (p2pPort + 1) is not a default transport, the API has 26657', () => {
  const config = defaultConfig()
  const tcpPorts = [
    ...(config.transport.includes('tcp') ? [config.p2pPort] : []),
    ...(config.transport.includes('ws') ? [config.p2pPort + 1] : []),
    config.apiPort,
  ]
  assert.equal(new Set(tcpPorts).size, tcpPorts.length, `TCP ports ${tcpPorts.join(', ')}`)
  assert.deepEqual(config.transport, ['tcp', 'quic'])
})
