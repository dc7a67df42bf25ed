// Every command's --help ends with examples, in process (no child per command).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import type { Command } from 'commander'
import { buildProgram, run } from '../src/cli/main.ts'
import type { CliIo } from '../src/cli/context.ts'

function captureIo(): { io: CliIo; out: () => string } {
  let text = ''
  const sink = new PassThrough()
  sink.on('data', (c: Buffer) => (text += c.toString()))
  const io = {
    stdout: sink,
    stderr: sink as unknown as NodeJS.WriteStream,
    stdin: new PassThrough() as unknown as NodeJS.ReadStream,
    env: {},
  }
  return { io, out: () => text }
}

function commandPaths(command: Command, path: string[] = []): string[][] {
  return command.commands
    .filter((c) => c.name() !== 'help')
    .flatMap((c) => [[...path, c.name()], ...commandPaths(c, [...path, c.name()])])
}

test('--help of every command and subcommand shows examples', async () => {
  const paths = commandPaths(buildProgram(captureIo().io))
  assert.ok(paths.length > 30, `${paths.length} commands`)
  const missing: string[] = []
  for (const path of paths) {
    const { io, out } = captureIo()
    assert.equal(await run([...path, '--help'], io), 0, path.join(' '))
    await new Promise((r) => setImmediate(r))
    if (!/Examples?:\n\s+\$ donghae /.test(out())) missing.push(path.join(' '))
  }
  assert.deepEqual(missing, [], 'commands whose --help has no examples')
})
