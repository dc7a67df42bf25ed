import { join } from 'node:path'
import type { Command } from 'commander'
import { readGenesisFile } from '../../chain/genesis.ts'
import { loadKeystore } from '../../identity/keystore.ts'
import { FullNode } from '../../node.ts'
import { createContext, type CliIo } from '../context.ts'
import { CliError } from '../errors.ts'
import { obtainPassword } from '../password.ts'

interface NodeOptions {
  genesis?: string
  passwordFile?: string
  json?: boolean
}

export function registerNode(program: Command, io: CliIo): void {
  program
    .command('node')
    .description('run this home as a node: p2p host (libp2p), chain, HTTP API — until SIGINT/SIGTERM')
    .option('--genesis <file>', 'genesis file (default <home>/genesis.json)')
    .option('--password-file <file>', 'read the keystore password from a file')
    .option('--json', "print one JSON line with the node's addresses once it runs")
    .addHelpText(
      'after',
      `
Configuration (flag > env > <home>/config.json > default): p2pPort, listenHost, apiPort,
apiHost, bootstrap, mdns, nat — see \`donghae config show\`.

Examples:
  $ donghae genesis --validator self --account self:1000000 --out ~/.donghae/genesis.json
  $ donghae node
  $ DONGHAE_BOOTSTRAP=/ip4/192.168.1.10/tcp/26656/p2p/12D3KooW… donghae node`,
    )
    .action(async (options: NodeOptions, command: Command) => {
      const ctx = createContext(command, io)
      const { config } = ctx.config()
      const genesis = await readGenesisFile(options.genesis ?? join(ctx.home.dir, 'genesis.json'))
      const password = await obtainPassword(
        { prompt: 'Keystore password' },
        { passwordFile: options.passwordFile, env: io.env, stdin: io.stdin, stderr: io.stderr },
      )
      const key = await loadKeystore(ctx.home.keystore, password)
      let node: FullNode
      try {
        node = await FullNode.start({ dataDir: ctx.home.data, genesis, key, config, logger: ctx.logger })
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
        height: node.node.app.head.height,
      }
      if (options.json === true) io.stdout.write(`${JSON.stringify(info)}\n`)
      else {
        ctx.out(`node ${config.moniker} running on chain ${genesis.chainId} at height ${info.height}`)
        ctx.out(`  did      ${info.did}`)
        ctx.out(`  api      ${info.api}`)
        for (const address of info.addresses) ctx.out(`  listen   ${address}`)
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
      io.stderr.write('stopping…\n')
      await node.stop()
      io.stderr.write('stopped\n')
    })
}
