import { test } from 'node:test'
import assert from 'node:assert/strict'
import { InvalidInputError } from '../core/errors.ts'
import { JEMALLOC_PATHS, findJemalloc, nodeProcessEnv, nodeProcessVariables } from './node-process.ts'

const FEDORA = '/usr/lib64/libjemalloc.so.2'
const onFedora = (path: string): boolean => path === FEDORA
const nowhere = (): boolean => false

test('nodeProcessVariables: jemalloc preloaded on Linux where installed, first in LD_PRELOAD', () => {
  assert.deepEqual(nodeProcessVariables({ env: {}, platform: 'linux', exists: onFedora }), {
    MALLOC_ARENA_MAX: '2',
    LD_PRELOAD: FEDORA,
  })
  // a preload already set (libfaketime, a profiler) stays, after the allocator
  assert.equal(
    nodeProcessVariables({ env: { LD_PRELOAD: '/x/libfaketime.so.1' }, platform: 'linux', exists: onFedora })
      .LD_PRELOAD,
    `${FEDORA}:/x/libfaketime.so.1`,
  )
  // the first path that exists wins (Debian's before the generic one)
  const both = new Set([JEMALLOC_PATHS[0], '/usr/lib/libjemalloc.so.2'])
  assert.equal(findJemalloc({ platform: 'linux', exists: (p) => both.has(p) }), JEMALLOC_PATHS[0])
})

test('nodeProcessVariables: no preload on macOS, without the library, with DONGHAE_MALLOC=system, or twice', () => {
  assert.equal(nodeProcessVariables({ env: {}, platform: 'darwin', exists: () => true }).LD_PRELOAD, undefined)
  assert.equal(nodeProcessVariables({ env: {}, platform: 'linux', exists: nowhere }).LD_PRELOAD, undefined)
  assert.equal(
    nodeProcessVariables({ env: { DONGHAE_MALLOC: 'system' }, platform: 'linux', exists: onFedora }).LD_PRELOAD,
    undefined,
  )
  const already = { LD_PRELOAD: '/opt/lib/libjemalloc.so.2' }
  assert.equal(nodeProcessVariables({ env: already, platform: 'linux', exists: onFedora }).LD_PRELOAD, undefined)
  assert.equal(nodeProcessEnv({ env: already, platform: 'linux', exists: onFedora }).LD_PRELOAD, already.LD_PRELOAD)
})

test('nodeProcessVariables: DONGHAE_MALLOC=jemalloc without the library, or an unknown choice, is a clear error', () => {
  assert.throws(
    () => nodeProcessVariables({ env: { DONGHAE_MALLOC: 'jemalloc' }, platform: 'linux', exists: nowhere }),
    (err: unknown) => err instanceof InvalidInputError && /apt install libjemalloc2/.test(err.message),
  )
  assert.throws(
    () => nodeProcessVariables({ env: { DONGHAE_MALLOC: 'tcmalloc' }, platform: 'linux', exists: onFedora }),
    (err: unknown) => err instanceof InvalidInputError && /auto, jemalloc, system/.test(err.message),
  )
  assert.equal(
    nodeProcessVariables({ env: { DONGHAE_MALLOC: 'jemalloc' }, platform: 'linux', exists: onFedora }).LD_PRELOAD,
    FEDORA,
  )
})

test('nodeProcessEnv: the inherited environment kept, its MALLOC_ARENA_MAX winning, the preload merged', () => {
  const env = nodeProcessEnv({
    env: { PATH: '/bin', MALLOC_ARENA_MAX: '4', LD_PRELOAD: '/x/a.so' },
    platform: 'linux',
    exists: onFedora,
  })
  assert.deepEqual(env, { PATH: '/bin', MALLOC_ARENA_MAX: '4', LD_PRELOAD: `${FEDORA}:/x/a.so` })
  assert.deepEqual(nodeProcessEnv({ env: { PATH: '/bin' }, platform: 'darwin' }), {
    MALLOC_ARENA_MAX: '2',
    PATH: '/bin',
  })
})
