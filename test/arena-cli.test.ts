// The Arena CLI (src/cli/commands/arena.ts) in process: every subcommand's --help ends with
// examples (as test/cli-help.test.ts demands of the whole program), and `task sets` writes two
// hidden sets whose printed commitments are their sha256.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { Command, CommanderError } from 'commander'
import { toHex } from '../src/core/bytes.ts'
import { sha256 } from '../src/core/hash.ts'
import { registerArena } from '../src/cli/commands/arena.ts'
import { decodeValidationSet } from '../src/arena/evaluate.ts'
import type { CliIo } from '../src/cli/context.ts'

function program(): { run: (argv: string[]) => Promise<number>; out: () => string } {
  let text = ''
  const sink = new PassThrough()
  sink.on('data', (c: Buffer) => (text += c.toString()))
  const io: CliIo = {
    stdout: sink,
    stderr: sink as unknown as NodeJS.WriteStream,
    stdin: new PassThrough() as unknown as NodeJS.ReadStream,
    env: {},
  }
  const root = new Command('donghae')
    .configureOutput({ writeOut: (t) => io.stdout.write(t), writeErr: (t) => io.stderr.write(t) })
    .exitOverride()
  registerArena(root, io)
  return {
    run: async (argv) => {
      try {
        await root.parseAsync(argv, { from: 'user' })
        return 0
      } catch (err) {
        if (err instanceof CommanderError) return err.exitCode
        throw err
      }
    },
    out: () => text,
  }
}

test('every arena subcommand has examples in its --help', async () => {
  const paths = [
    ['task'],
    ['task', 'create'],
    ['task', 'list'],
    ['task', 'show'],
    ['task', 'sets'],
    ['train'],
    ['validate'],
  ]
  for (const path of paths) {
    const p = program()
    assert.equal(await p.run([...path, '--help']), 0, path.join(' '))
    await new Promise((r) => setImmediate(r))
    assert.match(p.out(), /Examples?:\n\s+\$ donghae /, path.join(' '))
  }
})

test('task sets writes two sets of the held-out digits with their commitments', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'arena-cli-'))
  try {
    const p = program()
    assert.equal(await p.run(['task', 'sets', '--out', dir, '--json']), 0)
    const printed = JSON.parse(p.out()) as Record<string, string>
    for (const name of ['set-a.bin', 'set-b.bin']) {
      const bytes = new Uint8Array(await readFile(join(dir, name)))
      assert.equal(printed[name], toHex(sha256(bytes)))
      assert.ok(decodeValidationSet(bytes).labels.length > 100)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
