/** Helpers for tests that run Donghae as child processes and talk to their HTTP APIs. */
import { spawn, type ChildProcess } from 'node:child_process'
import { BIN } from './cli.ts'

/** The JSON body of a GET, or undefined when the node is unreachable or answers non-2xx. */
export async function getJson<T>(url: string): Promise<T | undefined> {
  try {
    const res = await fetch(url)
    return res.ok ? ((await res.json()) as T) : undefined
  } catch {
    return undefined
  }
}

/** Resolves with the first line of stdout that is a JSON object (`--json` output). */
export function firstJsonLine(child: ChildProcess): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let buffer = ''
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk
      const line = buffer.split('\n').find((l) => l.startsWith('{'))
      if (line !== undefined) resolve(JSON.parse(line))
    })
    child.once('exit', (code) => reject(new Error(`exited with ${String(code)} before printing its JSON line`)))
  })
}

/** Resolves once the process has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve()),
  )
}

/**
 * `donghae devnet --nodes N --base-port P --json` in `home`, as a child process, with the tail of
 * its stderr kept for failure reports (`env` reaches every node: config keys such as
 * DONGHAE_API_ALLOWED_HOSTS). Tests pick `basePort` below 32768, outside Linux's
 * ephemeral range, where an outgoing socket could take a node's port.
 */
export function spawnDevnet(
  home: string,
  nodes: number,
  basePort: number,
  env: NodeJS.ProcessEnv = process.env,
): { child: ChildProcess; stderr(): string } {
  const child = spawn(
    process.execPath,
    [BIN, '--home', home, 'devnet', '--nodes', String(nodes), '--base-port', String(basePort), '--json'],
    { stdio: ['ignore', 'pipe', 'pipe'], env },
  )
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-20_000)))
  return { child, stderr: () => stderr }
}
