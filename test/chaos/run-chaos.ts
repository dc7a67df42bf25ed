/** `donghae chaos` run as a user runs it (niced, `--json`), for test/chaos and test/long. */
import { spawn } from 'node:child_process'

export interface ChaosJson {
  seed: number
  nodes: number
  minutes: number
  faults: string[]
  faultsApplied: Record<string, number>
  faultsFailed: Record<string, number>
  errors: string[]
  violations: Record<string, number>
  ok: boolean
  logs: string
  load: { committed: number; receipts: number }
  shrunk?: unknown[]
  details: Array<{ invariant: string; detail: string }>
}

export interface Run {
  code: number | null
  stdout: string
  stderr: string
  json: ChaosJson
}

/** `donghae chaos …` under nice, as a user runs it; the last stdout line parsed. */
export function chaos(bin: string, args: readonly string[], timeoutMs: number): Promise<Run> {
  const child = spawn('nice', ['-n', '10', process.execPath, bin, 'chaos', ...args, '--json'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
  const timer = setTimeout(() => child.kill('SIGINT'), timeoutMs)
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      const last = stdout.trim().split('\n').at(-1) ?? ''
      try {
        resolve({ code, stdout, stderr, json: JSON.parse(last) as ChaosJson })
      } catch {
        reject(new Error(`no JSON line (exit ${code}); stderr:\n${stderr.slice(-4_000)}`))
      }
    })
  })
}
