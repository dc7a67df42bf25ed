/**
 * The devnet under test: N `donghae node` processes started the way `donghae devnet` starts
 * them (its keys and genesis helpers, `NODE_PROCESS_FLAGS`), each with its log in
 * `<dir>/node<i>/node.log`, and optionally
 *
 *   - inside its own network namespace (`NetLab`), for partitions and loss;
 *   - under libfaketime with a per-node offset file, for clock skew (the whole process: its
 *     injected `systemClock`, libp2p's and Fastify's timestamps alike; monotonic time is left
 *     alone so timers still fire on time);
 *   - with its data dir on a tmpfs of its own, for disk-full.
 *
 * The cluster only starts, stops and signals processes and reports their exits; which exits
 * were expected is the runner's business.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, type WriteStream } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import { peerIdFromDid } from '../identity/peer-id.ts'
import { LOCALNET_PASSWORD, loadOrCreateGenesis, loadOrCreateKeys } from '../cli/local-network.ts'
import { NODE_PROCESS_FLAGS, nodeProcessEnv } from '../cli/node-process.ts'
import { API_TOKEN_FILE, loadOrCreateApiToken } from '../api/auth.ts'
import type { GenesisDoc } from '../chain/genesis.ts'
import { DATA_TMPFS_MB, P2P_PORT_OFFSET } from './constants.ts'
import { ChaosClusterError } from './errors.ts'
import { exec, type NetLab } from './netlab.ts'

/** This checkout's entry point: nodes run the same code as the runner. */
export const DONGHAE_BIN = fileURLToPath(new URL('../../bin/donghae.js', import.meta.url))
/** The chain id of every chaos devnet. */
export const CHAOS_CHAIN_ID = 'donghae-chaos'
const START_TIMEOUT_MS = 90_000
const STOP_GRACE_MS = 15_000
/** At the end of a run nothing depends on a clean stop (the stores are crash-safe): a short grace. */
const SHUTDOWN_GRACE_MS = 5_000

export type NodeState = 'up' | 'paused' | 'down'

export interface ClusterNode {
  index: number
  name: string
  did: string
  home: string
  api: string
  token: string
  log: string
  state: NodeState
  child?: ChildProcess
  /** libfaketime's offset file (skew enabled). */
  faketimeFile?: string
}

export interface NodeExit {
  node: number
  code: number | null
  signal: NodeJS.Signals | null
  /** True when the cluster itself stopped or killed the node. */
  expected: boolean
}

export interface ClusterInit {
  dir: string
  nodes: number
  basePort: number
  /** Per-node namespaces; undefined runs every node on 127.0.0.1. */
  lab?: NetLab
  /** libfaketime's library: given, every node runs under it with an offset file. */
  faketime?: string
  /** Put each node's data dir on a tmpfs of DATA_TMPFS_MB (root). */
  tmpfsData?: boolean
  /** The entry point nodes run. @default DONGHAE_BIN */
  bin?: string
  env?: NodeJS.ProcessEnv
  onExit?: (exit: NodeExit) => void
  /** Every stderr line of every node (JSON log lines), after it is written to the node's log. */
  onLogLine?: (node: number, line: string) => void
}

export class Cluster {
  readonly nodes: ClusterNode[] = []
  readonly init: ClusterInit
  genesis: GenesisDoc | undefined
  readonly #logs = new Map<number, WriteStream>()
  readonly #expectExit = new Set<number>()
  readonly #mounts: string[] = []

  constructor(init: ClusterInit) {
    this.init = init
  }

  #host(i: number): string {
    return this.init.lab?.nodeIp(i) ?? '127.0.0.1'
  }

  #p2pPort(i: number): number {
    return this.init.basePort + P2P_PORT_OFFSET + 2 * i
  }

  /** Keys, genesis, configs, tokens and (root) the data tmpfs of every node. */
  async setup(): Promise<void> {
    const { dir, nodes, basePort } = this.init
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const keys = await loadOrCreateKeys(dir, nodes, () => {})
    this.genesis = await loadOrCreateGenesis(dir, keys, [], CHAOS_CHAIN_ID)
    await writeFile(join(dir, 'password'), LOCALNET_PASSWORD, { mode: 0o600 })
    const dids = keys.map((k) => didFromEd25519PublicKey(k.publicKey))
    const p2p = (i: number): string =>
      `/ip4/${this.#host(i)}/tcp/${this.#p2pPort(i)}/p2p/${peerIdFromDid(dids[i] as string).toString()}`
    for (const [i, did] of dids.entries()) {
      const home = join(dir, `node${i}`)
      const config = {
        moniker: `node${i}`,
        apiHost: this.#host(i),
        apiPort: basePort + i,
        listenHost: this.#host(i),
        p2pPort: this.#p2pPort(i),
        bootstrap: nodes === 1 ? [] : [i === 0 ? p2p(1) : p2p(0)],
        mdns: false,
        nat: 'off',
        logLevel: 'info',
      }
      await writeFile(join(home, 'config.json'), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 })
      await writeFile(join(home, 'genesis.json'), await readFile(join(dir, 'genesis.json')))
      const { token } = await loadOrCreateApiToken(join(home, API_TOKEN_FILE))
      const node: ClusterNode = {
        index: i,
        name: `node${i}`,
        did,
        home,
        api: `http://${this.#host(i)}:${basePort + i}`,
        token,
        log: join(home, 'node.log'),
        state: 'down',
      }
      if (this.init.faketime !== undefined) {
        node.faketimeFile = join(home, 'faketime')
        await writeFile(node.faketimeFile, '+0\n')
      }
      if (this.init.tmpfsData === true) await this.#mountData(home)
      this.nodes.push(node)
    }
  }

  async #mountData(home: string): Promise<void> {
    const data = join(home, 'data')
    await mkdir(data, { recursive: true })
    const r = await exec('mount', ['-t', 'tmpfs', '-o', `size=${DATA_TMPFS_MB}m,mode=0755`, 'tmpfs', data])
    if (r.code !== 0) throw new ChaosClusterError(`mounting a tmpfs on ${data} failed: ${r.stderr.trim()}`)
    this.#mounts.push(data)
  }

  node(i: number): ClusterNode {
    const node = this.nodes[i]
    if (node === undefined) throw new ChaosClusterError(`no node ${i}`)
    return node
  }

  #env(node: ClusterNode): NodeJS.ProcessEnv {
    const inherited = this.init.env ?? process.env
    const skewed = this.init.faketime !== undefined && node.faketimeFile !== undefined
    // jemalloc and libfaketime in one process fail at start (libfaketime: "unexpected recursive
    // calls to clock_gettime()"), so a node under libfaketime keeps glibc's malloc
    const env: NodeJS.ProcessEnv = {
      ...nodeProcessEnv({ env: skewed ? { ...inherited, DONGHAE_MALLOC: 'system' } : inherited }),
      DONGHAE_PASSWORD: undefined,
    }
    if (this.init.faketime !== undefined && node.faketimeFile !== undefined) {
      env.LD_PRELOAD = env.LD_PRELOAD === undefined ? this.init.faketime : `${env.LD_PRELOAD}:${this.init.faketime}`
      env.FAKETIME_TIMESTAMP_FILE = node.faketimeFile
      // re-read the offset once a second: cheap (FAKETIME_NO_CACHE costs ~20 µs per clock read)
      env.FAKETIME_CACHE_DURATION = '1'
      env.FAKETIME_DONT_FAKE_MONOTONIC = '1'
    }
    return env
  }

  /** Starts node i (from its data dir) and resolves once it printed its JSON line. */
  async start(i: number): Promise<void> {
    const node = this.node(i)
    if (node.state !== 'down') return
    const bin = this.init.bin ?? DONGHAE_BIN
    const args = [
      ...NODE_PROCESS_FLAGS,
      bin,
      '--home',
      node.home,
      'node',
      '--password-file',
      join(this.init.dir, 'password'),
      '--json',
    ]
    const prefix = this.init.lab?.execPrefix(i) ?? []
    const [cmd, ...rest] = [...prefix, process.execPath, ...args] as [string, ...string[]]
    let log = this.#logs.get(i)
    if (log === undefined) {
      log = createWriteStream(node.log, { flags: 'a' })
      this.#logs.set(i, log)
    }
    const child = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'], env: this.#env(node) })
    node.child = child
    node.state = 'up'
    this.#pipeLog(i, child, log)
    child.once('exit', (code, signal) => {
      if (node.child === child) {
        node.child = undefined
        node.state = 'down'
      }
      const expected = this.#expectExit.delete(i)
      this.init.onExit?.({ node: i, code, signal, expected })
    })
    await this.#started(node, child)
  }

  #pipeLog(i: number, child: ChildProcess, log: WriteStream): void {
    let rest = ''
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      log.write(chunk)
      const lines = (rest + chunk).split('\n')
      rest = lines.pop() ?? ''
      for (const line of lines) this.init.onLogLine?.(i, line)
    })
  }

  #started(node: ClusterNode, child: ChildProcess): Promise<void> {
    return new Promise((resolve, reject) => {
      let buffer = ''
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        clearTimeout(timer)
        reject(new ChaosClusterError(`${node.name} exited during start (${signal ?? `code ${code}`}); see ${node.log}`))
      }
      const timer = setTimeout(() => {
        child.off('exit', onExit)
        reject(new ChaosClusterError(`${node.name} did not start within ${START_TIMEOUT_MS / 1000} s; see ${node.log}`))
      }, START_TIMEOUT_MS)
      const onData = (chunk: string): void => {
        buffer += chunk
        if (!buffer.includes('\n')) return
        clearTimeout(timer)
        child.off('exit', onExit)
        child.stdout?.off('data', onData)
        child.stdout?.resume()
        resolve()
      }
      child.stdout?.setEncoding('utf8').on('data', onData)
      child.once('exit', onExit)
    })
  }

  /** SIGKILL: no chance to flush anything. */
  async kill(i: number): Promise<void> {
    const node = this.node(i)
    const child = node.child
    if (child === undefined) return
    this.#expectExit.add(i)
    if (node.state === 'paused') child.kill('SIGCONT')
    const exited = exitOf(child)
    child.kill('SIGKILL')
    await exited
  }

  /** SIGTERM, SIGKILL after `graceMs`. */
  async stop(i: number, graceMs = STOP_GRACE_MS): Promise<void> {
    const node = this.node(i)
    const child = node.child
    if (child === undefined) return
    this.#expectExit.add(i)
    if (node.state === 'paused') child.kill('SIGCONT')
    const exited = exitOf(child)
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    child.kill('SIGTERM')
    await exited.finally(() => clearTimeout(timer))
  }

  pause(i: number): void {
    const node = this.node(i)
    if (node.child === undefined || node.state !== 'up') return
    node.child.kill('SIGSTOP')
    node.state = 'paused'
  }

  resume(i: number): void {
    const node = this.node(i)
    if (node.child === undefined || node.state !== 'paused') return
    node.child.kill('SIGCONT')
    node.state = 'up'
  }

  /** Sets node i's clock offset (libfaketime re-reads it within a second). */
  async setSkew(i: number, ms: number): Promise<void> {
    const file = this.node(i).faketimeFile
    if (file === undefined) throw new ChaosClusterError('clock skew needs libfaketime (apt-get install faketime)')
    const seconds = (ms / 1000).toFixed(3)
    await writeFile(file, `${ms >= 0 ? '+' : ''}${seconds}\n`)
  }

  /** Stops every node (SIGTERM, SIGKILL after SHUTDOWN_GRACE_MS), closes the logs, unmounts the tmpfs. */
  async shutdown(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.stop(n.index, SHUTDOWN_GRACE_MS).catch(() => this.kill(n.index))))
    for (const log of this.#logs.values()) await new Promise<void>((resolve) => log.end(() => resolve()))
    this.#logs.clear()
    for (const mount of this.#mounts.splice(0)) await exec('umount', ['-l', mount])
  }
}

function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve()),
  )
}
