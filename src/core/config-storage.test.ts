import { test } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfig } from './config.ts'
import { ConfigError } from './errors.ts'

test('modelStorage is a size in bytes, with or without a binary unit, and refuses anything else', () => {
  const load = (value: string | undefined): number =>
    loadConfig({ env: value === undefined ? {} : { DONGHAE_MODEL_STORAGE: value } }).config.modelStorage
  assert.equal(load(undefined), 16 * 1024 ** 3)
  assert.equal(load('1000'), 1000)
  assert.equal(load('512MiB'), 512 * 1024 ** 2)
  assert.equal(load(' 2 TiB '), 2 * 1024 ** 4)
  assert.equal(loadConfig({ flags: { modelStorage: 4096 }, env: {} }).config.modelStorage, 4096)
  for (const bad of ['16GB', '-1', '1.5GiB', 'lots', '99999999999TiB']) assert.throws(() => load(bad), ConfigError, bad)
})
