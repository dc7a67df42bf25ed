import type { Command } from 'commander'
import { readKeystoreFile, isKeystorePrivate } from '../../identity/keystore.ts'
import { parseDidKey } from '../../identity/did-key.ts'
import { peerIdFromDid } from '../../identity/peer-id.ts'
import { createContext, type CliIo } from '../context.ts'

export function registerId(program: Command, io: CliIo): void {
  program
    .command('id')
    .description("show this node's DID and libp2p PeerId (no password needed)")
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExamples:\n  $ donghae id\n  $ donghae --home /tmp/node1 id --json')
    .action(async (options: { json?: boolean }, command: Command) => {
      const ctx = createContext(command, io)
      const keystore = await readKeystoreFile(ctx.home.keystore)
      const { did } = parseDidKey(keystore.did)
      const result = {
        did,
        peerId: peerIdFromDid(did).toString(),
        moniker: ctx.config().config.moniker,
        home: ctx.home.dir,
      }
      if (!(await isKeystorePrivate(ctx.home.keystore))) {
        io.stderr.write(
          `warning: ${ctx.home.keystore} is readable by other users; run: chmod 600 ${ctx.home.keystore}\n`,
        )
      }
      if (options.json === true) ctx.json(result)
      else {
        ctx.out(`did      ${result.did}`)
        ctx.out(`peer id  ${result.peerId}`)
        ctx.out(`moniker  ${result.moniker}`)
        ctx.out(`home     ${result.home}`)
      }
    })
}
