import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync } from 'node:fs'
import { mkdir, writeFile, copyFile, access } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import { didFromEd25519PublicKey } from '../../identity/did-key.ts'
import { peerIdFromDid } from '../../identity/peer-id.ts'
import { createContext, type CliIo } from '../context.ts'
import { CliError } from '../errors.ts'
import { HOME_ENV } from '../home.ts'
import { LOCALNET_PASSWORD, loadOrCreateGenesis, loadOrCreateKeys } from '../local-network.ts'
import { API_TOKEN_FILE, loadOrCreateApiToken } from '../../api/auth.ts'
import { DASHBOARD_DIR, dashboardBuilt } from '../../api/server.ts'
import { NODE_PROCESS_FLAGS, nodeProcessEnv } from '../node-process.ts'

const BIN = fileURLToPath(new URL('../../../bin/donghae.js', import.meta.url))
/** The dashboard's build script: in a checkout only (an installed package carries a built dashboard or none). */
const BUILD_WEB = fileURLToPath(new URL('../../../scripts/build-web.ts', import.meta.url))

interface DevnetOptions {
  nodes: string
  basePort: string
  transport?: string
  fund: string[]
  param: string[]
  json?: boolean
}

interface DevnetNode {
  node: string
  did: string
  home: string
  api: string
  p2p: string
  log: string
  /** The node's dashboard, with its operator token in the fragment. */
  dashboard: string
  pid?: number
}

const collect = (value: string, previous: string[]): string[] => [...previous, value]

/** p2p ports leave room for the APIs (base + i) and each node's WebSockets port (+1). */
function p2pPort(base: number, i: number): number {
  return base + 100 + 2 * i
}

/** The one transport every node of the devnet listens on and dials with (`--transport`). */
const DEVNET_TRANSPORTS = ['tcp', 'quic', 'ws'] as const
type DevnetTransport = (typeof DEVNET_TRANSPORTS)[number]

/** Node i's p2p address on `transport`: TCP p2pPort, UDP p2pPort (QUIC), TCP p2pPort + 1 (WebSockets). */
function p2pMultiaddr(transport: DevnetTransport, port: number, peerId: string): string {
  switch (transport) {
    case 'tcp':
      return `/ip4/127.0.0.1/tcp/${port}/p2p/${peerId}`
    case 'quic':
      return `/ip4/127.0.0.1/udp/${port}/quic-v1/p2p/${peerId}`
    case 'ws':
      return `/ip4/127.0.0.1/tcp/${port + 1}/ws/p2p/${peerId}`
  }
}

function waitForLine(child: ChildProcess, what: string, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buffer = ''
    const timer = setTimeout(
      () => reject(new CliError(`${what} did not start within ${timeoutMs / 1000} s; see its log`)),
      timeoutMs,
    )
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk
      const line = buffer.split('\n').find((l) => l.startsWith('{'))
      if (line !== undefined) {
        clearTimeout(timer)
        resolve(JSON.parse(line) as Record<string, unknown>)
      }
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new CliError(`${what} exited during start (${signal ?? `code ${String(code)}`}); see its log`))
    })
  })
}

/**
 * Finds the dashboard the nodes will serve, or builds it: in a checkout scripts/build-web.ts
 * builds DASHBOARD_DIR when it is missing or older than its sources (Vite, a few seconds; silent
 * when it is up to date), so `donghae devnet` started directly serves the same dashboard as
 * `npm start`. Without the script, or when the build fails, the nodes start without it (the API
 * works) and the reason is printed.
 */
async function ensureDashboard(progress: (line: string) => void, env: NodeJS.ProcessEnv): Promise<void> {
  if (!existsSync(BUILD_WEB)) {
    if (!dashboardBuilt(DASHBOARD_DIR))
      progress(
        `devnet: no dashboard (${DASHBOARD_DIR} is missing and this install has no scripts/build-web.ts to build it); the API works without it`,
      )
    return
  }
  const child = spawn(process.execPath, [BUILD_WEB, '--quiet', '--out', DASHBOARD_DIR], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  })
  let errors = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) if (line.trim() !== '') progress(`devnet: ${line}`)
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (errors = (errors + chunk).slice(-2_000)))
  const code = await new Promise<number | null>((resolve) => {
    child.once('error', () => resolve(null))
    child.once('close', (c) => resolve(c))
  })
  if (code === 0 && dashboardBuilt(DASHBOARD_DIR)) return
  const last = errors.trim().split('\n').at(-1)
  const why = last === undefined || last === '' ? `the dashboard build ended with exit code ${String(code)}` : last
  progress(`devnet: ${why}`)
  progress(
    dashboardBuilt(DASHBOARD_DIR)
      ? `devnet: the nodes serve the previous build of ${DASHBOARD_DIR}`
      : `devnet: the nodes start without the dashboard (the API works); build it with \`npm run build:web\``,
  )
}

export function registerDevnet(program: Command, io: CliIo): void {
  program
    .command('devnet')
    .description('run a local network of N validator processes on loopback over real libp2p sockets')
    .option('--nodes <n>', 'number of validator processes', '4')
    .option('--base-port <port>', 'node i serves its API on base-port + i and p2p on base-port + 100 + 2i', '26657')
    .option(
      '--transport <name>',
      "the nodes' only p2p transport: tcp (TCP port base-port + 100 + 2i), quic (QUIC over UDP, same port number) or ws (WebSockets, TCP base-port + 101 + 2i); without it the nodes meet over TCP and also listen on QUIC, as `donghae node` does",
    )
    .option('--fund <did:amount>', 'also give this DID a balance in a new genesis (repeatable)', collect, [])
    .option(
      '--param <key=value>',
      'a chain parameter of a new genesis, e.g. settleWindowMs=300000 (repeatable; see donghae genesis)',
      collect,
      [],
    )
    .option('--json', 'print one JSON line with the node table once every node runs')
    .addHelpText(
      'after',
      `
The network lives in --home (default ~/.donghae/devnet): node i's home is <home>/node<i>, with
its keystore (a well-known password: play money only), config, genesis and log (node.log).
Ctrl-C stops every node; running the command again with the same --home resumes the chain.
A node killed on its own can be restarted with the command printed for it. With --transport
every node runs \`donghae node --transport <name>\`: it listens on and dials that transport
only, so the devnet shows the transport works on its own (docs/transports.md).
On Linux the nodes run on jemalloc where it is installed (apt install libjemalloc2): glibc's
malloc keeps what bursts of garbage freed, so a node's memory only grows. DONGHAE_MALLOC=system
keeps glibc's; DONGHAE_MALLOC=jemalloc refuses to start without jemalloc.

Examples:
  $ donghae devnet --nodes 4
  $ donghae devnet --nodes 4 --home /tmp/devnet --base-port 27000
  $ donghae devnet --nodes 2 --transport quic
  $ donghae devnet --home /tmp/soak --param settleWindowMs=300000
  $ donghae chain status --node http://127.0.0.1:26658`,
    )
    .action(async (options: DevnetOptions, command: Command) => {
      const ctx = createContext(command, io)
      const count = Number(options.nodes)
      const base = Number(options.basePort)
      if (!Number.isInteger(count) || count < 1 || count > 16) throw new CliError('--nodes must be 1-16')
      const transport = (options.transport ?? 'tcp') as DevnetTransport
      if (!(DEVNET_TRANSPORTS as readonly string[]).includes(transport))
        throw new CliError(
          `--transport must be one of ${DEVNET_TRANSPORTS.join(', ')} (got ${JSON.stringify(options.transport)})`,
        )
      if (!Number.isInteger(base) || base < 1024 || p2pPort(base, count) > 65_534)
        throw new CliError('--base-port must be 1024 or more and leave room for every node')
      const explicitHome = command.optsWithGlobals<{ home?: string }>().home ?? io.env[HOME_ENV]
      const dir = explicitHome === undefined ? join(homedir(), '.donghae', 'devnet') : ctx.home.dir
      const progress = (line: string): void => void io.stderr.write(`${line}\n`)
      progress(`devnet: ${count} validators in ${dir} over ${transport}`)
      await mkdir(dir, { recursive: true, mode: 0o700 })
      const keys = await loadOrCreateKeys(dir, count, progress)
      const genesis = await loadOrCreateGenesis(dir, keys, options.fund, 'donghae-devnet', options.param)
      const passwordFile = join(dir, 'password')
      await writeFile(passwordFile, LOCALNET_PASSWORD, { mode: 0o600 })
      const dids = keys.map((k) => didFromEd25519PublicKey(k.publicKey))
      const p2pAddress = (i: number): string =>
        p2pMultiaddr(transport, p2pPort(base, i), peerIdFromDid(dids[i] as string).toString())
      const table: DevnetNode[] = dids.map((did, i) => ({
        node: `node${i}`,
        did,
        home: join(dir, `node${i}`),
        api: `http://127.0.0.1:${base + i}`,
        p2p: p2pAddress(i),
        log: join(dir, `node${i}`, 'node.log'),
        dashboard: `http://127.0.0.1:${base + i}/`,
      }))
      for (const [i, row] of table.entries()) {
        const config = {
          moniker: row.node,
          apiHost: '127.0.0.1',
          apiPort: base + i,
          listenHost: '127.0.0.1',
          p2pPort: p2pPort(base, i),
          bootstrap: count === 1 ? [] : [i === 0 ? p2pAddress(1) : p2pAddress(0)],
          mdns: false,
          nat: 'off',
          logLevel: 'info',
          // every development node is also a DID directory (docs/directory.md)
          directory: true,
        }
        await writeFile(join(row.home, 'config.json'), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 })
        const { token } = await loadOrCreateApiToken(join(row.home, API_TOKEN_FILE))
        row.dashboard = `${row.api}/#token=${token}`
        try {
          await access(join(row.home, 'genesis.json'))
        } catch {
          await copyFile(join(dir, 'genesis.json'), join(row.home, 'genesis.json'))
        }
      }
      const children = new Map<string, ChildProcess>()
      let stopping = false
      const nodeArgs = (row: DevnetNode): string[] => [
        BIN,
        '--home',
        row.home,
        'node',
        '--password-file',
        passwordFile,
        ...(options.transport === undefined ? [] : ['--transport', transport]),
      ]
      const startNode = async (row: DevnetNode): Promise<void> => {
        const log = createWriteStream(row.log, { flags: 'a' })
        const child = spawn(process.execPath, [...NODE_PROCESS_FLAGS, ...nodeArgs(row), '--json'], {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...nodeProcessEnv({ env: io.env }), DONGHAE_PASSWORD: undefined },
        })
        child.stderr?.pipe(log)
        children.set(row.node, child)
        row.pid = child.pid
        child.once('exit', (code, signal) => {
          children.delete(row.node)
          if (!stopping) {
            progress(`devnet: ${row.node} exited (${signal ?? `code ${String(code)}`}); restart it with:`)
            progress(`  ${process.execPath} ${[...NODE_PROCESS_FLAGS, ...nodeArgs(row)].join(' ')}`)
          }
        })
        await waitForLine(child, row.node, 60_000)
        child.stdout?.resume()
      }
      const stopAll = async (): Promise<void> => {
        stopping = true
        const exits = [...children.values()].map(
          (child) =>
            new Promise<void>((resolve) => {
              const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
              child.once('exit', () => {
                clearTimeout(timer)
                resolve()
              })
              child.kill('SIGTERM')
            }),
        )
        await Promise.all(exits)
      }
      await ensureDashboard(progress, { ...io.env, DONGHAE_PASSWORD: undefined })
      try {
        for (const [i, row] of table.entries()) {
          progress(`devnet: [${i + 1}/${count}] starting ${row.node} (API ${row.api})`)
          await startNode(row)
        }
      } catch (err) {
        await stopAll()
        throw err
      }
      if (options.json === true)
        io.stdout.write(
          `${JSON.stringify({ chainId: genesis.chainId, dir, transport, password: passwordFile, dashboard: table[0]?.dashboard, nodes: table })}\n`,
        )
      else {
        ctx.out(`devnet ${genesis.chainId} running over ${transport} \u2014 Ctrl-C to stop`)
        for (const row of table) ctx.out(`  ${row.node}  ${row.api}  pid ${row.pid ?? '?'}  ${row.did}`)
        ctx.out(`  logs: ${join(dir, 'node<i>', 'node.log')}`)
        ctx.out('')
        ctx.out(`open the dashboard: ${table[0]?.dashboard ?? ''}`)
      }
      await new Promise<void>((resolve) => {
        const onSignal = (): void => {
          process.off('SIGINT', onSignal)
          process.off('SIGTERM', onSignal)
          resolve()
        }
        process.on('SIGINT', onSignal)
        process.on('SIGTERM', onSignal)
      })
      progress('devnet: stopping\u2026')
      await stopAll()
      progress('devnet: stopped; run the same command to resume')
    })
}
