/**
 * A real Secret Service for tests: a private D-Bus session bus (its own socket, no service
 * activation, so nothing else is started on it) with `gnome-keyring-daemon --components=secrets`,
 * whose login keyring is created and unlocked from a password on its stdin. Both run in their
 * own process groups and are killed as groups by `stop()`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export const SECRET_SERVICE_TOOLS = ['dbus-daemon', 'dbus-send', 'gnome-keyring-daemon'] as const

/** Why a Secret Service cannot be started here, or undefined when it can. */
export function secretServiceMissing(): string | undefined {
  if (process.platform !== 'linux') return `the Secret Service test runs on Linux (this is ${process.platform})`
  const missing = SECRET_SERVICE_TOOLS.filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
  if (missing.length === 0) return undefined
  return `${missing.join(', ')} not installed (apt-get install --no-install-recommends dbus gnome-keyring)`
}

export interface SecretService {
  /** DBUS_SESSION_BUS_ADDRESS for the processes that should see this Secret Service. */
  address: string
  /** Kills both process groups and waits for them to exit. */
  stop(): Promise<void>
  /** Whether both daemons have exited. */
  stopped(): boolean
}

const BUS_CONFIG = (
  socket: string,
): string => `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

async function killGroup(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || exited(child)) return
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const signal = (name: NodeJS.Signals): void => {
    try {
      process.kill(-(child.pid as number), name)
    } catch {
      // the group is already gone
    }
  }
  signal('SIGTERM')
  const timer = setTimeout(() => signal('SIGKILL'), 5000)
  try {
    await done
  } finally {
    clearTimeout(timer)
  }
}

function firstLine(child: ChildProcess, what: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    const timer = setTimeout(() => reject(new Error(`${what} printed nothing within ${timeoutMs} ms`)), timeoutMs)
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk
      const end = text.indexOf('\n')
      if (end >= 0) {
        clearTimeout(timer)
        resolve(text.slice(0, end).trim())
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${what} exited with ${String(code)}`))
    })
  })
}

function nameHasOwner(address: string, name: string): boolean {
  const result = spawnSync(
    'dbus-send',
    [
      `--bus=${address}`,
      '--print-reply',
      '--dest=org.freedesktop.DBus',
      '/org/freedesktop/DBus',
      'org.freedesktop.DBus.NameHasOwner',
      `string:${name}`,
    ],
    { encoding: 'utf8', timeout: 5000 },
  )
  return result.status === 0 && /boolean true/.test(result.stdout)
}

/** Starts the bus and the keyring under `dir`; resolves once org.freedesktop.secrets is on the bus. */
export async function startSecretService(dir: string, keyringPassword = 'test keyring'): Promise<SecretService> {
  const home = join(dir, 'keyring-home')
  const runtime = join(dir, 'run')
  await mkdir(home, { recursive: true, mode: 0o700 })
  await mkdir(runtime, { recursive: true, mode: 0o700 })
  const config = join(dir, 'session-bus.conf')
  await writeFile(config, BUS_CONFIG(join(dir, 'bus')))
  const bus = spawn('dbus-daemon', [`--config-file=${config}`, '--nofork', '--print-address=1'], {
    detached: true,
    stdio: ['ignore', 'pipe', 'ignore'],
  })
  let keyring: ChildProcess | undefined
  const stop = async (): Promise<void> => {
    if (keyring !== undefined) await killGroup(keyring)
    await killGroup(bus)
  }
  try {
    const address = await firstLine(bus, 'dbus-daemon', 10_000)
    keyring = spawn('gnome-keyring-daemon', ['--unlock', '--components=secrets', '--foreground'], {
      detached: true,
      env: { PATH: process.env.PATH, HOME: home, XDG_RUNTIME_DIR: runtime, DBUS_SESSION_BUS_ADDRESS: address },
      stdio: ['pipe', 'ignore', 'ignore'],
    })
    keyring.stdin?.end(keyringPassword)
    const deadline = Date.now() + 15_000
    while (!nameHasOwner(address, 'org.freedesktop.secrets')) {
      if (exited(keyring)) throw new Error(`gnome-keyring-daemon exited with ${String(keyring.exitCode)}`)
      if (Date.now() > deadline) throw new Error('gnome-keyring-daemon did not own org.freedesktop.secrets within 15 s')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const started = keyring
    return { address, stop, stopped: () => exited(bus) && exited(started) }
  } catch (err) {
    await stop()
    throw err
  }
}
