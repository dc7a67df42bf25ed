/**
 * Each node in its own network namespace, all on one bridge, so packets between two nodes can
 * be dropped without touching anything else (root only):
 *
 *   host (runner) 10.231.X.1 -- bridge chb<tag> -+- veth -- ns chn<tag>-0  10.231.X.2  node0
 *                                                +- veth -- ns chn<tag>-1  10.231.X.3  node1
 *                                                +- ...
 *
 * A partition or a one-way loss is an nftables table of its own in the namespaces of the nodes it
 * hits (`chaos_f<fault id>`), so lifting a fault deletes exactly its rules. Drops are `nft` rules
 * (`numgen random mod 100 < p` for a share of packets) rather than `tc netem`: netem is a kernel
 * module that many container kernels lack, nftables is built in. The runner's own traffic comes
 * from the bridge address and is never filtered, so the checks see every node through a partition.
 * Names carry a random tag; `teardown()` removes every namespace, link and table it made.
 */
import { execFile } from 'node:child_process'
import { randomBytes, randomInt } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { ChaosFaultError } from './errors.ts'

interface ExecResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs a command (20 s limit), never throws: the caller decides what a failure means. */
export function exec(cmd: string, args: readonly string[], input?: string): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 20_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
      resolve({ code, stdout, stderr: stderr || (err?.message ?? '') })
    })
    child.stdin?.on('error', () => {})
    child.stdin?.end(input ?? '')
  })
}

async function must(cmd: string, args: readonly string[], input?: string): Promise<string> {
  const r = await exec(cmd, args, input)
  if (r.code !== 0)
    throw new ChaosFaultError(`${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`, {
      details: { cmd, args },
    })
  return r.stdout
}

export function onPath(binary: string): boolean {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin'])
  return dirs.some((d) => d !== '' && existsSync(join(d, binary)))
}

/** Why per-node namespaces cannot be made here (not Linux, not root, no ip or nft), or undefined. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'network namespaces need Linux'
  if (process.getuid?.() !== 0) return 'not root: network namespaces and nftables need root'
  if (!onPath('ip')) return 'ip is not installed (apt-get install iproute2)'
  if (!onPath('nft')) return 'nft is not installed (apt-get install nftables)'
  const probe = `chprobe-${randomBytes(3).toString('hex')}`
  const r = await exec('ip', ['netns', 'add', probe])
  if (r.code !== 0) return `ip netns add failed: ${r.stderr.trim()}`
  await exec('ip', ['netns', 'del', probe])
  return undefined
}

export class NetLab {
  readonly tag: string
  readonly nodes: number
  /** The runner's address on the bridge. */
  readonly hostIp: string
  readonly #prefix: string
  readonly #bridge: string
  #made: { namespaces: string[]; bridge: boolean } = { namespaces: [], bridge: false }

  private constructor(nodes: number) {
    this.tag = randomBytes(3).toString('hex')
    this.nodes = nodes
    this.#prefix = `10.231.${randomInt(0, 256)}`
    this.hostIp = `${this.#prefix}.1`
    this.#bridge = `chb${this.tag}`
  }

  static async create(nodes: number): Promise<NetLab> {
    const lab = new NetLab(nodes)
    try {
      await lab.#setup()
    } catch (err) {
      await lab.teardown()
      throw err
    }
    return lab
  }

  ns(i: number): string {
    return `chn${this.tag}-${i}`
  }

  nodeIp(i: number): string {
    return `${this.#prefix}.${i + 2}`
  }

  async #setup(): Promise<void> {
    await must('ip', ['link', 'add', this.#bridge, 'type', 'bridge'])
    this.#made.bridge = true
    await must('ip', ['addr', 'add', `${this.hostIp}/24`, 'dev', this.#bridge])
    await must('ip', ['link', 'set', this.#bridge, 'up'])
    for (let i = 0; i < this.nodes; i++) {
      const ns = this.ns(i)
      const veth = `chv${this.tag}${i}`
      await must('ip', ['netns', 'add', ns])
      this.#made.namespaces.push(ns)
      await must('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
      await must('ip', ['link', 'set', veth, 'master', this.#bridge, 'up'])
      await must('ip', ['-n', ns, 'addr', 'add', `${this.nodeIp(i)}/24`, 'dev', 'eth0'])
      await must('ip', ['-n', ns, 'link', 'set', 'eth0', 'up'])
      await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
    }
  }

  /** The command prefix that runs a program inside node i's namespace (`ip netns exec` execs: same pid). */
  execPrefix(i: number): string[] {
    return ['ip', 'netns', 'exec', this.ns(i)]
  }

  async #table(i: number, name: string, rules: { input: string[]; output: string[] }): Promise<void> {
    const script = [
      `table inet ${name} {`,
      '  chain input { type filter hook input priority 0; policy accept;',
      ...rules.input.map((r) => `    ${r}`),
      '  }',
      '  chain output { type filter hook output priority 0; policy accept;',
      ...rules.output.map((r) => `    ${r}`),
      '  }',
      '}',
      '',
    ].join('\n')
    await must('ip', ['netns', 'exec', this.ns(i), 'nft', '-f', '-'], script)
  }

  async #dropTable(i: number, name: string): Promise<void> {
    await exec('ip', ['netns', 'exec', this.ns(i), 'nft', 'delete', 'table', 'inet', name])
  }

  /** Drops every packet between `side` and the other nodes, both ways; resolves to the function that heals it. */
  async partition(id: number, side: readonly number[]): Promise<() => Promise<void>> {
    const name = `chaos_f${id}`
    const others = Array.from({ length: this.nodes }, (_, i) => i).filter((i) => !side.includes(i))
    const set = `{ ${others.map((i) => this.nodeIp(i)).join(', ')} }`
    for (const i of side)
      await this.#table(i, name, { input: [`ip saddr ${set} drop`], output: [`ip daddr ${set} drop`] })
    return async () => {
      for (const i of side) await this.#dropTable(i, name)
    }
  }

  /** Drops `percent` % of the packets `from` sends to `to` (one way). */
  async loss(id: number, from: number, to: number, percent: number): Promise<() => Promise<void>> {
    const name = `chaos_f${id}`
    const rule =
      percent >= 100
        ? `ip daddr ${this.nodeIp(to)} drop`
        : `ip daddr ${this.nodeIp(to)} numgen random mod 100 < ${percent} drop`
    await this.#table(from, name, { input: [], output: [rule] })
    return () => this.#dropTable(from, name)
  }

  /** Removes every namespace and the bridge; resolves to the commands that failed (none, normally). */
  async teardown(): Promise<string[]> {
    const failed: string[] = []
    const run = async (args: string[]): Promise<void> => {
      const r = await exec('ip', args)
      if (r.code !== 0) failed.push(`ip ${args.join(' ')}: ${r.stderr.trim()}`)
    }
    for (const ns of this.#made.namespaces.splice(0)) await run(['netns', 'del', ns])
    if (this.#made.bridge) await run(['link', 'del', this.#bridge])
    this.#made.bridge = false
    return failed
  }
}
