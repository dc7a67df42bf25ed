import { mkdir, readdir, writeFile, rm } from 'node:fs/promises'
import type { Command } from 'commander'
import { defaultConfig, loadConfig } from '../../core/config.ts'
import { Ed25519KeyPair } from '../../identity/keys.ts'
import { didFromEd25519PublicKey } from '../../identity/did-key.ts'
import { peerIdFromDid } from '../../identity/peer-id.ts'
import { encryptKeystore, writeKeystoreFile } from '../../identity/keystore.ts'
import { loadOrCreateApiToken } from '../../api/auth.ts'
import { createContext, type CliIo } from '../context.ts'
import { HomeStateError } from '../errors.ts'
import { obtainPassword } from '../password.ts'

interface InitOptions {
  json?: boolean
  ifMissing?: boolean
  passwordFile?: string
}

/** True when `dir` exists and holds anything at all. */
async function isNonEmptyDir(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length > 0
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

export function registerInit(program: Command, io: CliIo): void {
  program
    .command('init')
    .description(
      'create a home directory with a new identity key (encrypted keystore), a config file and the API operator token',
    )
    .option('--json', 'print the result as JSON')
    .option('--if-missing', 'do nothing (and succeed) when the home is already initialized')
    .option('--password-file <file>', 'read the keystore password from a file instead of DONGHAE_PASSWORD or a prompt')
    .addHelpText(
      'after',
      `
The password comes from --password-file, else DONGHAE_PASSWORD, else a prompt.
The operator token of the node's HTTP API goes to <home>/api-token (mode 0600): send it as
"Authorization: Bearer <token>" to operator routes, or open the dashboard with #token=<token>.
init never overwrites an existing home.

Examples:
  $ donghae init
  $ DONGHAE_PASSWORD='correct horse battery' donghae --home /tmp/node1 init --json`,
    )
    .action(async (options: InitOptions, command: Command) => {
      const ctx = createContext(command, io)
      const { home } = ctx
      if (await isNonEmptyDir(home.dir)) {
        if (options.ifMissing === true) {
          if (options.json !== true) ctx.out(`home ${home.dir} is already initialized`)
          return
        }
        throw new HomeStateError(
          `${home.dir} already exists and is not empty; refusing to overwrite it (choose another --home, or remove it first)`,
        )
      }
      // Validate flags/env before asking for a password, so a typo fails fast.
      const flagged = ctx.config().config
      const password = await obtainPassword(
        { prompt: 'Choose a password for the new keystore', confirm: true, isNew: true },
        { passwordFile: options.passwordFile, env: io.env, stdin: io.stdin, stderr: io.stderr },
      )
      const keyPair = Ed25519KeyPair.generate()
      const keystore = await encryptKeystore(keyPair, password)
      await mkdir(home.dir, { recursive: true, mode: 0o700 })
      try {
        await writeKeystoreFile(home.keystore, keystore)
        const config = { ...defaultConfig(), moniker: flagged.moniker }
        await writeFile(home.config, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600, flag: 'wx' })
        loadConfig({ file: home.config, env: {} })
        await loadOrCreateApiToken(home.apiToken)
      } catch (err) {
        await rm(home.keystore, { force: true })
        await rm(home.config, { force: true })
        await rm(home.apiToken, { force: true })
        throw err
      }
      const did = didFromEd25519PublicKey(keyPair.publicKey)
      const result = {
        home: home.dir,
        did,
        peerId: peerIdFromDid(did).toString(),
        keystore: home.keystore,
        apiToken: home.apiToken,
      }
      if (options.json === true) ctx.json(result)
      else {
        ctx.out(`initialized ${home.dir}`)
        ctx.out(`  did     ${result.did}`)
        ctx.out(`  peer id ${result.peerId}`)
        ctx.out(`  api token ${result.apiToken} (operator routes and the dashboard)`)
        ctx.out(`keep your password safe: the keystore cannot be opened without it`)
      }
    })
}
