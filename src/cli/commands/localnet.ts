import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Command } from 'commander'
import type { FastifyInstance } from 'fastify'
import { didFromEd25519PublicKey } from '../../identity/did-key.ts'
import { MemoryHub } from '../../net/memory-transport.ts'
import { PohVerifier } from '../../chain/poh/verifier.ts'
import { VerifyPool } from '../../identity/verify-pool.ts'
import { DonghaeNode } from '../../node/chain-node.ts'
import { NodeDirectory, SIGNALLING_PATH } from '../../node/directory.ts'
import { createApiServer } from '../../api/server.ts'
import { createContext, type CliIo } from '../context.ts'
import { loadOrCreateGenesis, loadOrCreateKeys } from '../local-network.ts'
import { CliError } from '../errors.ts'

interface LocalnetOptions {
  validators: string
  dir?: string
  basePort: string
  fund: string[]
  poh: 'worker' | 'inline'
  json?: boolean
}

const collect = (value: string, previous: string[]): string[] => [...previous, value]

export function registerLocalnet(program: Command, io: CliIo): void {
  program
    .command('localnet')
    .description(
      'run a local chain of N validators in this process (in-memory network, real databases, one HTTP API per node)',
    )
    .option('--validators <n>', 'number of validators', '4')
    .option('--dir <dir>', 'where the network lives (default <home>/localnet); a second run resumes it')
    .option('--base-port <port>', 'node i serves its API on base-port + i', '26657')
    .option('--fund <did:amount>', 'also give this DID a balance in a new genesis (repeatable)', collect, [])
    .option('--poh <mode>', 'worker: PoH on worker threads; inline: on the main thread', 'worker')
    .option('--json', 'print the node table as one JSON line once every API listens')
    .addHelpText(
      'after',
      `
The validators' keystores use a fixed, publicly known password: this network is for development.
Stop it with Ctrl-C; the databases are kept, and the same --dir resumes the chain.

Examples:
  $ donghae localnet
  $ donghae localnet --validators 4 --dir /tmp/net --base-port 27000 --fund did:key:z6Mk\u2026:5000000
  $ donghae chain status --node http://127.0.0.1:26657`,
    )
    .action(async (options: LocalnetOptions, command: Command) => {
      const ctx = createContext(command, io)
      const count = Number(options.validators)
      const basePort = Number(options.basePort)
      if (!Number.isInteger(count) || count < 1 || count > 32) throw new CliError('--validators must be 1-32')
      if (!Number.isInteger(basePort) || basePort < 1 || basePort + count > 65_535)
        throw new CliError('--base-port must leave room for one port per validator')
      if (options.poh !== 'worker' && options.poh !== 'inline') throw new CliError('--poh must be worker or inline')
      const dir = options.dir ?? join(ctx.home.dir, 'localnet')
      const progress = (line: string): void => void io.stderr.write(`${line}\n`)
      progress(`localnet: ${count} validators in ${dir}`)
      await mkdir(dir, { recursive: true, mode: 0o700 })
      const keys = await loadOrCreateKeys(dir, count, progress)
      const genesis = await loadOrCreateGenesis(dir, keys, options.fund)
      const genesisDids = new Set(genesis.validators.map((v) => v.did))
      if (!keys.every((k) => genesisDids.has(didFromEd25519PublicKey(k.publicKey)))) {
        throw new CliError(`${dir}/genesis.json was made for other keys; use another --dir`)
      }
      const hub = new MemoryHub()
      const verifier = new PohVerifier({ logger: ctx.logger })
      if (options.poh === 'worker') verifier.start()
      const verifyPool = new VerifyPool({ logger: ctx.logger })
      verifyPool.start()
      const nodes: DonghaeNode[] = []
      const servers: FastifyInstance[] = []
      const directories: NodeDirectory[] = []
      const stopAll = async (): Promise<void> => {
        for (const server of servers.splice(0)) await server.close()
        for (const directory of directories.splice(0)) directory.stop()
        for (const node of nodes.splice(0).reverse()) await node.stop()
        if (options.poh === 'worker') await verifier.stop()
        await verifyPool.stop()
      }
      try {
        for (const [i, key] of keys.entries()) {
          const did = didFromEd25519PublicKey(key.publicKey)
          const transport = hub.join(did)
          const node = await DonghaeNode.create({
            dataDir: join(dir, `node${i}`),
            genesis,
            key,
            transport,
            moniker: `node${i}`,
            poh: options.poh,
            verifier,
            verifyPool,
            logger: ctx.logger,
          })
          nodes.push(node)
          // every localnet node is also a DID directory, gossiping over the in-memory network
          const directory = new NodeDirectory({
            dataDir: join(dir, `node${i}`),
            transport,
            key,
            endpoint: () => `http://127.0.0.1:${basePort + i}${SIGNALLING_PATH}`,
            logger: ctx.logger,
          })
          directory.start()
          directories.push(directory)
          const server = createApiServer({ chain: node.chainApi, logger: ctx.logger, directory })
          servers.push(server)
          try {
            await server.listen({ host: '127.0.0.1', port: basePort + i })
          } catch (err) {
            throw new CliError(
              `cannot serve node${i}'s API on 127.0.0.1:${basePort + i}: ${(err as Error).message}; choose another --base-port`,
            )
          }
          progress(`  node${i}: height ${node.app.head.height}, API http://127.0.0.1:${basePort + i}`)
        }
        for (const node of nodes) node.start()
      } catch (err) {
        await stopAll()
        throw err
      }
      const table = nodes.map((n, i) => ({ node: `node${i}`, did: n.did, api: `http://127.0.0.1:${basePort + i}` }))
      if (options.json === true) io.stdout.write(`${JSON.stringify({ chainId: genesis.chainId, dir, nodes: table })}\n`)
      else {
        ctx.out(`chain ${genesis.chainId} running \u2014 Ctrl-C to stop`)
        for (const row of table) ctx.out(`  ${row.node}  ${row.api}  ${row.did}`)
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
      progress('localnet: stopping\u2026')
      await stopAll()
      progress('localnet: stopped; run the same command to resume')
    })
}
