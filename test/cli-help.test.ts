// Every command's --help ends with examples, in process (no child per command).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { Command } from 'commander'
import { buildProgram, COMMAND_GROUPS, commandNamed, run } from '../src/cli/main.ts'
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
  const paths = commandPaths(await buildProgram(captureIo().io))
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

test('each command group registers exactly the top-level commands its entry names, in help order', async () => {
  const everything = await buildProgram(captureIo().io)
  const listed = everything.commands.map((c) => c.name()).filter((n) => n !== 'version' && n !== 'help')
  assert.deepEqual(
    listed,
    COMMAND_GROUPS.flatMap((group) => group.commands),
  )
  for (const group of COMMAND_GROUPS) {
    const program = new Command('donghae')
    ;(await group.load())(program, captureIo().io)
    assert.deepEqual(
      program.commands.map((c) => c.name()),
      group.commands,
      `the group of ${group.commands.join(', ')}`,
    )
    // a program-wide option must not come with one group: a command of another would lose it
    assert.deepEqual(
      program.options.map((o) => o.long),
      [],
      `program options added by ${group.commands.join(', ')}`,
    )
  }
})

test('commandNamed: the command after the program options, `help X` names X, none for help and version', () => {
  assert.equal(commandNamed(['tx', 'transfer', '--to', 'x']), 'tx')
  assert.equal(commandNamed(['--home', '/tmp/h', '--log-level', 'debug', 'chain', 'status']), 'chain')
  assert.equal(commandNamed(['--home=/tmp/h', 'node']), 'node')
  assert.equal(commandNamed(['--node', 'http://127.0.0.1:1', 'nat', 'status']), 'nat')
  assert.equal(commandNamed(['help', 'wallet']), 'wallet')
  assert.equal(commandNamed(['--help']), undefined)
  assert.equal(commandNamed(['-V']), undefined)
  assert.equal(commandNamed(['--moniker', 'tx']), undefined)
  assert.equal(commandNamed(['--', 'tx']), undefined)
})

test('a command loads only its own group: `tx --help` works without the node, help lists every group', async () => {
  const one = await buildProgram(captureIo().io, ['tx', '--help'])
  assert.deepEqual(
    one.commands.map((c) => c.name()).filter((n) => n !== 'version'),
    ['chain', 'account', 'tx', 'stake', 'worker', 'deposit'],
  )
  const all = await buildProgram(captureIo().io, ['--help'])
  assert.ok(all.commands.some((c) => c.name() === 'node') && all.commands.some((c) => c.name() === 'wallet'))
  const unknown = captureIo()
  assert.equal(await run(['walet'], unknown.io), 2)
  assert.match(unknown.out(), /Did you mean wallet\?/)
})
