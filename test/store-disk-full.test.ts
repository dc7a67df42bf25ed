// A full disk must not lose an acknowledged write (found by a 7-validator chaos run: after a full
// disk and a SIGKILL a validator forgot the prevote it had signed and signed a different one, a
// double sign). LevelDB, after a log write that fails half-way, accepts later writes and loses
// them all on its next open. The store refuses every write after a failed one, so whatever was
// acknowledged survives: a child process fills a small tmpfs until a write fails, frees the
// space, tries more writes, is SIGKILLed; the database, opened again, holds every acknowledged
// write. Needs root (mount) and fallocate.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Store } from '../src/store/store.ts'
import { utf8Codec } from '../src/store/codecs.ts'

const writer = fileURLToPath(new URL('./fixtures/disk-full-writer.ts', import.meta.url))

function canMount(): string | undefined {
  if (process.platform !== 'linux') return 'tmpfs mounts need Linux'
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root'
  try {
    execFileSync('fallocate', ['--version'], { stdio: 'ignore' })
  } catch {
    return 'fallocate (util-linux) is not installed'
  }
  return undefined
}

const why = canMount()
// justified: mounting a tmpfs needs root on Linux; CI runs as root, so there it always runs
test(
  'a full disk: no write acknowledged before or after the failure is lost after SIGKILL',
  { skip: why },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'donghae-disk-full-'))
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir])
    try {
      const child = spawn(process.execPath, [writer, dir, '3900k'], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      let err = ''
      child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c))
      await new Promise<void>((resolve, reject) => {
        child.stdout.setEncoding('utf8').on('data', (c: string) => {
          out += c
          if (out.includes('ready\n')) resolve()
        })
        child.on('exit', (code) => reject(new Error(`writer exited (code ${String(code)}) before ready: ${err}`)))
      })
      child.kill('SIGKILL')
      await new Promise((resolve) => child.on('close', resolve))
      const lines = out.trim().split('\n')
      const acked = lines.filter((l) => l.startsWith('ok ')).map((l) => l.slice(3))
      const refused = lines.filter((l) => l.startsWith('refused '))
      assert.ok(acked.length > 10, `writes before the disk filled: ${acked.length}`)
      assert.ok(refused.length >= 1, 'the disk filled')
      assert.match(refused[0] ?? '', /^refused before\/\d+ StoreWriteFailedError$/, 'the failed write is typed')
      assert.ok(lines.includes('failure StoreWriteFailedError'), 'the owner was told')
      // every write after the failure is refused, not acknowledged and then lost
      for (const key of ['after/0', 'after/4', 'after/batch'])
        assert.ok(
          lines.includes(`refused ${key} StoreWriteFailedError`),
          `${key} refused: ${lines.slice(-8).join(' | ')}`,
        )

      const store = await Store.open(join(dir, 'db'))
      try {
        const items = store.bucket('items', utf8Codec, utf8Codec)
        const present = new Set<string>()
        for await (const [key] of items.entries()) present.add(key)
        const lost = acked.filter((k) => !present.has(k))
        assert.deepEqual(lost, [], 'every acknowledged write is there after the crash')
        // the store takes writes again once opened with room on the disk
        await items.put('after/reopen', 'v')
        assert.equal(await items.get('after/reopen'), 'v')
      } finally {
        await store.close()
      }
    } finally {
      execFileSync('umount', ['-l', dir])
      await rm(dir, { recursive: true, force: true })
    }
  },
)
