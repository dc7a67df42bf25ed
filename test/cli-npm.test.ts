// A newcomer's first commands, with the machine's own npm and Node (Node 20 on the CI machine):
// `npx donghae --help` in the checkout prints no npm warning (no unknown .npmrc key, no
// EBADENGINE from an `engines` the system's Node does not meet) and runs on the project's Node 24;
// bin/donghae.js run directly by an older Node refuses with the command to use instead.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { delimiter } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BIN } from './helpers/cli.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SYSTEM_NODE = '/usr/bin/node'
const SYSTEM_NPX = '/usr/bin/npx'

function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // the PATH of a shell, not of `npm test` (whose node_modules/.bin comes first), and no npm_* variables
  const path = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((p) => !p.includes('node_modules'))
    .join(delimiter)
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { PATH: path, HOME: process.env.HOME, npm_config_update_notifier: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

test(
  '`npx donghae --help` with the system npm: no npm warnings, the help on stdout',
  { skip: existsSync(SYSTEM_NPX) ? false : `${SYSTEM_NPX} is absent`, timeout: 60_000 }, // justified: only a machine with a system npm can show its warnings
  async () => {
    const out = await run(SYSTEM_NPX, ['--offline', 'donghae', '--help'])
    assert.equal(out.code, 0, out.stderr)
    assert.equal(out.stderr, '', 'nothing on stderr: no "npm warn" (unknown config, EBADENGINE)')
    assert.match(out.stdout, /^Usage: donghae /)
  },
)

test(
  'bin/donghae.js under a Node older than 24 refuses, naming `npx donghae`',
  {
    skip: !existsSync(SYSTEM_NODE) ? `${SYSTEM_NODE} is absent` : false, // justified: needs an older system Node to refuse
  },
  async (t) => {
    const version = await run(SYSTEM_NODE, ['--version'])
    if (Number(/^v(\d+)/.exec(version.stdout)?.[1] ?? 0) >= 24)
      return t.skip(`${SYSTEM_NODE} is ${version.stdout.trim()}`) // justified: a system Node ≥ 24 is not refused, nothing to show
    const out = await run(SYSTEM_NODE, [BIN, '--help'])
    assert.equal(out.code, 1)
    assert.equal(out.stdout, '')
    assert.match(
      out.stderr,
      /^donghae: Node\.js 24 or newer is required \(this is v\d+\.\d+\.\d+\): run it as `npx donghae …`/,
    )
  },
)
