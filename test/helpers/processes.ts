/** Helpers for tests that run Donghae as child processes and talk to their HTTP APIs. */
import type { ChildProcess } from 'node:child_process'

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
