// `donghae service install|uninstall|status` in a temporary HOME, for both platforms, without
// touching the real service manager; the generated files; the node's rotating log file.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger } from '../src/core/logger.ts'
import { RotatingLogFile } from '../src/cli/log-file.ts'
import {
  launchdPlist,
  parseServiceCommand,
  serviceCommand,
  systemdUnit,
  systemdWord,
  type ServiceSpec,
} from '../src/cli/service-files.ts'
import { BIN, runCli } from './helpers/cli.ts'
import { findJemalloc } from '../src/cli/node-process.ts'

const PASSWORD = 'correct horse battery'

async function sandbox(): Promise<{ dir: string; home: string; env: NodeJS.ProcessEnv; done: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-service-'))
  const bin = join(dir, 'empty-bin')
  await mkdir(bin)
  // HOME is the sandbox; PATH has neither systemctl nor launchctl, so nothing real is touched.
  return {
    dir,
    home: join(dir, 'node home'),
    env: { HOME: dir, PATH: bin },
    done: () => rm(dir, { recursive: true, force: true }),
  }
}

function oneLineError(stderr: string): string {
  const lines = stderr.trim().split('\n')
  assert.equal(lines.length, 1, `expected one error line, got: ${stderr}`)
  assert.match(lines[0] ?? '', /^donghae: /)
  return lines[0] ?? ''
}

test('service files: systemd unit and launchd plist run `donghae node` with absolute paths, restart, rotate logs', () => {
  const spec: ServiceSpec = {
    node: '/opt/node 24/bin/node',
    bin: '/src/donghae/bin/donghae.js',
    home: '/Users/ana/My "Donghae" 100%$HOME',
    passwordFile: '/Users/ana/.donghae-pw',
    logFile: '/Users/ana/logs/node & co <1>.log',
    env: { MALLOC_ARENA_MAX: '2', LD_PRELOAD: '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2:/opt/my lib/x.so' },
  }
  const unit = systemdUnit(spec)
  assert.match(unit, /^Environment=MALLOC_ARENA_MAX=2$/m)
  assert.match(
    unit,
    /^Environment="LD_PRELOAD=\/usr\/lib\/x86_64-linux-gnu\/libjemalloc\.so\.2:\/opt\/my lib\/x\.so"$/m,
  )
  assert.ok(unit.indexOf('Environment=') < unit.indexOf('ExecStart='), 'in the [Service] section')
  assert.match(unit, /^\[Service\]$/m)
  assert.match(unit, /^Restart=on-failure$/m)
  assert.match(unit, /^RestartSec=5$/m)
  assert.match(unit, /^WantedBy=default\.target$/m)
  assert.match(
    unit,
    /^ExecStart="\/opt\/node 24\/bin\/node" --max-semi-space-size=4 \/src\/donghae\/bin\/donghae\.js --home /m,
  )
  assert.ok(unit.includes('"/Users/ana/My \\"Donghae\\" 100%%$$HOME"'), 'quotes, % and $ escaped for systemd')
  assert.deepEqual(parseServiceCommand('linux', unit), serviceCommand(spec))
  assert.equal(systemdWord('plain/path-1.2'), 'plain/path-1.2')

  const plist = launchdPlist(spec)
  assert.match(plist, /<key>Label<\/key>\s*<string>org\.donghae\.node<\/string>/)
  assert.match(plist, /<key>KeepAlive<\/key>\s*<dict>\s*<key>SuccessfulExit<\/key>\s*<false\/>/)
  assert.match(plist, /<key>RunAtLoad<\/key>\s*<true\/>/)
  assert.match(
    plist,
    /<key>EnvironmentVariables<\/key>\s*<dict>\s*<key>MALLOC_ARENA_MAX<\/key>\s*<string>2<\/string>\s*<key>LD_PRELOAD<\/key>/,
  )
  assert.doesNotMatch(launchdPlist({ ...spec, env: {} }), /EnvironmentVariables/)
  assert.ok(plist.includes('<string>/Users/ana/logs/node &amp; co &lt;1&gt;.log</string>'), 'XML-escaped')
  assert.ok(plist.includes('<string>--log-file</string>'))
  assert.deepEqual(parseServiceCommand('darwin', plist), serviceCommand(spec))
  assert.deepEqual(serviceCommand(spec).slice(3, 6), ['--home', spec.home, 'node'])
})

test('service install/uninstall on Linux in a temp HOME: idempotent, no systemctl when it is not there', async () => {
  const s = await sandbox()
  try {
    const init = await runCli(['--home', s.home, 'init'], { ...s.env, DONGHAE_PASSWORD: PASSWORD })
    assert.equal(init.code, 0, init.stderr)
    const pw = join(s.dir, 'password')
    await writeFile(pw, PASSWORD, { mode: 0o600 })
    const unitPath = join(s.dir, '.config', 'systemd', 'user', 'donghae.service')
    const install = ['--home', s.home, 'service', 'install', '--platform', 'linux', '--password-file', pw]

    const first = await runCli([...install, '--json'], s.env)
    assert.equal(first.code, 0, first.stderr)
    const result = JSON.parse(first.stdout) as { file: string; state: string; ran: boolean; skipped: string }
    assert.deepEqual([result.file, result.state, result.ran], [unitPath, 'installed', false])
    assert.match(result.skipped, /systemctl is not available here/)
    const unit = await readFile(unitPath, 'utf8')
    // the allocator the devnet gives its nodes (src/cli/node-process.ts): jemalloc where this machine has it
    const jemalloc = process.platform === 'linux' ? findJemalloc() : undefined
    assert.match(unit, /^Environment=MALLOC_ARENA_MAX=2$/m)
    assert.equal(unit.includes(`Environment=LD_PRELOAD=${jemalloc}\n`), jemalloc !== undefined, unit)
    assert.deepEqual(parseServiceCommand('linux', unit), [
      process.execPath,
      '--max-semi-space-size=4',
      BIN,
      '--home',
      s.home,
      'node',
      '--password-file',
      pw,
      '--log-file',
      join(s.home, 'logs', 'node.log'),
    ])

    const again = await runCli(install, s.env)
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stdout, /^unchanged /m)
    assert.match(again.stdout, /systemctl is not available here/)
    assert.equal(await readFile(unitPath, 'utf8'), unit)

    const status = await runCli(['service', 'status', '--platform', 'linux', '--json'], s.env)
    assert.deepEqual(JSON.parse(status.stdout), {
      platform: 'linux',
      file: unitPath,
      installed: true,
      running: null,
      home: s.home,
      detail: 'systemctl is not available here',
    })

    const removed = await runCli(['service', 'uninstall', '--platform', 'linux'], s.env)
    assert.equal(removed.code, 0, removed.stderr)
    assert.match(removed.stdout, /^removed /m)
    await assert.rejects(stat(unitPath))
    const twice = await runCli(['service', 'uninstall', '--platform', 'linux', '--json'], s.env)
    assert.equal(twice.code, 0)
    assert.equal((JSON.parse(twice.stdout) as { state: string }).state, 'not-installed')
  } finally {
    await s.done()
  }
})

test('service install --dry-run for macOS writes the LaunchAgent only; status and uninstall follow', async () => {
  const s = await sandbox()
  try {
    await runCli(['--home', s.home, 'init'], { ...s.env, DONGHAE_PASSWORD: PASSWORD })
    const pw = join(s.dir, 'password')
    await writeFile(pw, PASSWORD)
    await chmod(pw, 0o644)
    const env = { ...s.env, PATH: process.env.PATH }
    const installed = await runCli(
      ['--home', s.home, 'service', 'install', '--platform', 'darwin', '--dry-run', '--password-file', pw],
      env,
    )
    assert.equal(installed.code, 0, installed.stderr)
    assert.match(
      installed.stdout,
      /dry run: not running launchctl bootout gui\/\d+\/org\.donghae\.node; launchctl bootstrap/,
    )
    assert.match(installed.stderr, /readable by others; chmod 600/)
    const plistPath = join(s.dir, 'Library', 'LaunchAgents', 'org.donghae.node.plist')
    const plist = await readFile(plistPath, 'utf8')
    assert.equal(parseServiceCommand('darwin', plist)?.[4], s.home)
    const status = await runCli(['service', 'status', '--platform', 'darwin', '--dry-run', '--json'], env)
    assert.equal((JSON.parse(status.stdout) as { installed: boolean }).installed, true)
    const removed = await runCli(['service', 'uninstall', '--platform', 'darwin', '--dry-run'], env)
    assert.match(removed.stdout, /^removed .*\n.*dry run/m)
    await assert.rejects(stat(plistPath))
  } finally {
    await s.done()
  }
})

test('service errors are one line that says what to do, with a non-zero exit', async () => {
  const s = await sandbox()
  try {
    const noHome = await runCli(['--home', s.home, 'service', 'install', '--platform', 'linux'], s.env)
    assert.equal(noHome.code, 1)
    assert.match(oneLineError(noHome.stderr), /no keystore; run `donghae init`/)
    await runCli(['--home', s.home, 'init'], { ...s.env, DONGHAE_PASSWORD: PASSWORD })
    const noPassword = await runCli(['--home', s.home, 'service', 'install', '--platform', 'linux'], s.env)
    assert.equal(noPassword.code, 1)
    assert.match(oneLineError(noPassword.stderr), /--password-file/)
    const missing = await runCli(
      ['--home', s.home, 'service', 'install', '--platform', 'linux', '--password-file', join(s.dir, 'nope')],
      s.env,
    )
    assert.match(oneLineError(missing.stderr), /does not exist/)
    const windows = await runCli(['service', 'status', '--platform', 'win32'], s.env)
    assert.equal(windows.code, 1)
    assert.match(oneLineError(windows.stderr), /supports linux \(systemd\) and darwin \(launchd\)/)
  } finally {
    await s.done()
  }
})

test('init writes the API operator token (0600) next to the keystore', async () => {
  const s = await sandbox()
  try {
    const init = await runCli(['--home', s.home, 'init', '--json'], { ...s.env, DONGHAE_PASSWORD: PASSWORD })
    assert.equal(init.code, 0, init.stderr)
    const { apiToken } = JSON.parse(init.stdout) as { apiToken: string }
    assert.equal(apiToken, join(s.home, 'api-token'))
    assert.equal((await stat(apiToken)).mode & 0o777, 0o600)
    assert.match((await readFile(apiToken, 'utf8')).trim(), /^[A-Za-z0-9_-]{43}$/)
  } finally {
    await s.done()
  }
})

test('RotatingLogFile: pino lines rotate by size; at most `keep` old files; newest last', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-log-'))
  try {
    const path = join(dir, 'logs', 'node.log')
    const file = new RotatingLogFile(path, { maxBytes: 1024, keep: 2 })
    const logger = createLogger({ level: 'info', destination: file })
    for (let i = 0; i < 100; i++) logger.info({ i }, 'a line of about one hundred bytes')
    file.close()
    assert.deepEqual((await readdir(join(dir, 'logs'))).sort(), ['node.log', 'node.log.1', 'node.log.2'])
    for (const name of ['node.log', 'node.log.1', 'node.log.2'])
      assert.ok((await stat(join(dir, 'logs', name))).size <= 1024, name)
    assert.equal((await stat(path)).mode & 0o777, 0o600)
    const last = (await readFile(path, 'utf8')).trim().split('\n').at(-1) ?? '{}'
    assert.equal((JSON.parse(last) as { i: number }).i, 99)
    const older = (await readFile(`${path}.1`, 'utf8')).trim().split('\n').at(-1) ?? '{}'
    assert.ok((JSON.parse(older) as { i: number }).i < 99)
    // Reopening appends to the live file.
    const reopened = new RotatingLogFile(path, { maxBytes: 1024, keep: 2 })
    reopened.write('{"again":true}\n')
    reopened.close()
    assert.match(await readFile(path, 'utf8'), /"again":true/)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
