import module from 'node:module'
import { join } from 'node:path'
import type { Command } from 'commander'
import { readGenesisFile } from '../../chain/genesis.ts'
import { FullNode } from '../../node/full-node.ts'
import { behaviourFromEnv } from '../../node/inference.ts'
import { loadOrCreateApiToken } from '../../api/auth.ts'
import { DASHBOARD_DIR, dashboardBuilt } from '../../api/server.ts'
import { createLogger } from '../../core/logger.ts'
import { describeError } from '../../core/errors.ts'
import { loadConfig } from '../../core/config.ts'
import { DEFAULT_LOG_KEEP, RotatingLogFile } from '../log-file.ts'
import { createContext, type CliIo } from '../context.ts'
import { CliError } from '../errors.ts'
import { unlockHomeKeystore } from '../password.ts'

/** How long a node stopping after a failed database write may take before the process just exits. */
const WRITE_FAILURE_EXIT_MS = 10_000

interface NodeOptions {
  genesis?: string
  passwordFile?: string
  json?: boolean
  logFile?: string
  logMaxMb: string
  transport?: string
}

export function registerNode(program: Command, io: CliIo): void {
  program
    .command('node')
    .description(
      'run this home as a node: p2p host (libp2p), chain, HTTP API \u2014 until SIGINT/SIGTERM, or until its chain database refuses a write (a full disk: exits 1)',
    )
    .option('--genesis <file>', 'genesis file (default <home>/genesis.json)')
    .option('--password-file <file>', 'read the keystore password from a file')
    .option('--json', "print one JSON line with the node's addresses once it runs")
    .option(
      '--log-file <file>',
      `write logs to this file instead of stderr, rotated by size (${DEFAULT_LOG_KEEP} old files kept)`,
    )
    .option('--log-max-mb <n>', 'rotate the --log-file past this many MiB', '10')
    .option(
      '--transport <list>',
      'p2p transports to listen on and dial with, only these: tcp (TCP p2pPort), quic (UDP p2pPort), ws (WebSockets, TCP p2pPort + 1), comma-separated (config transport; default tcp,quic)',
    )
    .addHelpText(
      'after',
      `
Configuration (flag > env > <home>/config.json > default): p2pPort, transport, listenHost, apiPort,
apiHost, apiCors, apiAllowedHosts, apiRateLimit, bootstrap, mdns, nat, worker, workerSlots, workerMemory,
executionProvider, serve, runner, canaryPpm, modelStorage, expertReplicas, expertMemory, expertTraining, directory \u2014 see
\`donghae config show\`. The API's operator token is
<home>/api-token (made on first start if missing); the dashboard is at the API's address. The
API answers only requests whose Host is localhost, 127.0.0.1, [::1] or the address it listens on
(421 otherwise: a web page that rebinds its own name to this node is refused); reach it under
another name (a LAN name, a reverse proxy) by adding the name to apiAllowedHosts, e.g.
DONGHAE_API_ALLOWED_HOSTS=node.lan:26657,node.example.org. worker=false (DONGHAE_WORKER=0) runs a
gateway only. executionProvider (DONGHAE_EXECUTION_PROVIDER): auto (CoreML on macOS, CUDA when its
library is installed, else CPU), cpu, coreml or cuda. serve (DONGHAE_SERVE): which registered
models to serve \u2014 all, models:<name or CID>,\u2026 or publishers:<did>,\u2026. runner (DONGHAE_RUNNER):
sandbox (default: a child process per model, empty directory, limits) or in-process. A worker
must also be bonded on chain (\`donghae worker bond\`); models are read from <home>/models and
fetched from peers, block by block from several at once (UnixFS over bitswap, within modelStorage,
DONGHAE_MODEL_STORAGE, default 16GiB); workerMemory (DONGHAE_WORKER_MEMORY, MiB, 0 = half the
machine) bounds the models loaded at once, least recently used unloaded first. The node pays for the jobs it signs itself (operator requests) from its own
deposit with itself, which it tops up from its balance (\`donghae deposit\`). Mixture-of-Experts
(AI-Block): the node hosts the expert blocks that rendezvous hashing over the validators gives it
(expertReplicas, DONGHAE_EXPERT_REPLICAS, default 2 hosts per block; 0 hosts none) within
expertMemory (MiB, default 256), reproduces and attests proposals when it is a validator, and with
expertTraining=true fine-tunes hosted experts while no generation runs.
directory=true (DONGHAE_DIRECTORY=1) runs a DID directory: signed registrations, searched by text,
category and tag, shared with the other directories by gossip (\`donghae directory --help\`).
webrtc (DONGHAE_WEBRTC, default true) answers signed WebRTC offers at POST /v1/webrtc/offer (open
to pages on any origin: each offer is signed by its DID) and serves the node's language model on
the data channel; iceServers (DONGHAE_ICE_SERVERS, e.g. stun:stun.example.org:3478) adds STUN
servers, none by default (host candidates only). transport (--transport, DONGHAE_TRANSPORT, default
tcp,quic; ws listens on p2pPort + 1, so move apiPort off it first): the p2p transports, e.g. --transport quic for QUIC only (UDP p2pPort: open or forward
UDP, not TCP) \u2014 peers need one transport in common with this node; see docs/transports.md.

Examples:
  $ donghae genesis --validator self --account self:1000000 --out ~/.donghae/genesis.json
  $ donghae node
  $ donghae node --password-file ~/.donghae/password --log-file ~/.donghae/logs/node.log
  $ DONGHAE_BOOTSTRAP=/ip4/192.168.1.10/tcp/26656/p2p/12D3KooW\u2026 donghae node
  $ donghae node --transport quic`,
    )
    .action(async (options: NodeOptions, command: Command) => {
      const ctx = createContext(command, io)
      // --transport is the config key transport given as a flag (validated by the config table)
      const globals = command.optsWithGlobals<{ logLevel?: string; moniker?: string }>()
      const { config } =
        options.transport === undefined
          ? ctx.config()
          : loadConfig({
              file: ctx.home.config,
              env: io.env,
              flags: { logLevel: globals.logLevel, moniker: globals.moniker, transport: options.transport },
            })
      const genesis = await readGenesisFile(options.genesis ?? join(ctx.home.dir, 'genesis.json'))
      // --password-file, DONGHAE_PASSWORD, the platform's keychain (donghae keys --keychain), the prompt
      const { keyPair: key, password } = await unlockHomeKeystore(
        ctx.home,
        { prompt: 'Keystore password' },
        { passwordFile: options.passwordFile, env: io.env, stdin: io.stdin, stderr: io.stderr },
      )
      const maxMb = Number(options.logMaxMb)
      if (!Number.isFinite(maxMb) || maxMb < 0.01) throw new CliError('--log-max-mb must be a positive number, e.g. 10')
      const logFile =
        options.logFile === undefined
          ? undefined
          : new RotatingLogFile(options.logFile, { maxBytes: Math.round(maxMb * 1024 * 1024) })
      // config logLevel (flag > DONGHAE_LOG_LEVEL > config file > info) for stderr and the log file alike
      const logger = createLogger({
        level: config.logLevel,
        ...(logFile === undefined ? {} : { destination: logFile }),
      })
      const apiToken = await loadOrCreateApiToken(ctx.home.apiToken)
      if (apiToken.created) io.stderr.write(`created the API operator token ${ctx.home.apiToken}\n`)
      if (!dashboardBuilt(DASHBOARD_DIR))
        io.stderr.write(
          `dashboard: not built (${DASHBOARD_DIR} is missing); run \`npm run build:web\` in the checkout \u2014 the API works without it\n`,
        )
      let node: FullNode
      try {
        node = await FullNode.start({
          dataDir: ctx.home.data,
          genesis,
          key,
          config,
          logger,
          apiToken: apiToken.token,
          cors: config.apiCors,
          allowedHosts: config.apiAllowedHosts,
          rateLimitPerMinute: config.apiRateLimit,
          // the wallet's ledger is encrypted under the keystore's password (docs/wallet.md)
          wallet: { password, mailbox: config.walletMailbox },
          inference: {
            modelDirs: [join(ctx.home.dir, 'models')],
            behaviour: behaviourFromEnv(io.env.DONGHAE_UNSAFE_WORKER),
          },
        })
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'EADDRINUSE')
          throw new CliError(
            `a port is already in use (${(err as Error).message}); set apiPort/p2pPort or stop the other node`,
          )
        throw err
      }
      const info = {
        did: node.node.did,
        peerId: node.host.peerId.toString(),
        addresses: node.host.getMultiaddrs().map(String),
        api: node.apiUrl,
        dashboard: `${node.apiUrl}/`,
        apiToken: ctx.home.apiToken,
        height: node.node.app.head.height,
      }
      // Every module a running node needs is loaded now: write what Node's compile cache holds of
      // them (compiled code, stripped JavaScript) at once, not only at exit, which a killed node
      // never reaches; the next start then neither compiles them nor loads the TypeScript stripper.
      module.flushCompileCache?.()
      if (options.json === true) io.stdout.write(`${JSON.stringify(info)}\n`)
      else {
        ctx.out(`node ${config.moniker} running on chain ${genesis.chainId} at height ${info.height}`)
        ctx.out(`  did      ${info.did}`)
        ctx.out(`  api      ${info.api}`)
        ctx.out(`  dashboard ${info.dashboard}#token=\u2026 (token in ${info.apiToken})`)
        for (const address of info.addresses) ctx.out(`  listen   ${address}`)
      }
      // A write the chain database refused (a full disk) stops the node: the database takes no more
      // writes until it is opened again, and a node that cannot write must not keep signing
      // (store.ts). A service manager, or the operator once there is room, starts it again.
      let writeFailure: Error | undefined
      await new Promise<void>((resolve) => {
        const offWriteFailure = node.node.store.onWriteFailure((err) => {
          writeFailure = err
          onSignal()
        })
        const onSignal = (): void => {
          process.off('SIGINT', onSignal)
          process.off('SIGTERM', onSignal)
          offWriteFailure()
          resolve()
        }
        process.on('SIGINT', onSignal)
        process.on('SIGTERM', onSignal)
        if (node.node.store.writeFailure !== undefined) {
          writeFailure = node.node.store.writeFailure
          onSignal()
        }
      })
      io.stderr.write('stopping\u2026\n')
      if (writeFailure !== undefined) {
        // whatever still holds the event loop after the stop (a part that failed to stop), the
        // process ends: it must not go on without a database that writes
        setTimeout(() => process.exit(1), WRITE_FAILURE_EXIT_MS).unref()
        await node.stop().catch((err: unknown) => io.stderr.write(`donghae: while stopping: ${describeError(err)}\n`))
      } else await node.stop()
      logFile?.close()
      io.stderr.write('stopped\n')
      if (writeFailure !== undefined)
        throw new CliError(
          `stopped: the chain database refused a write (${writeFailure.message}); start the node again once the disk has room`,
        )
    })
}
