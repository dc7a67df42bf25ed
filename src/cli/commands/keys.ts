import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { defaultConfig } from '../../core/config.ts'
import {
  decryptKeystore,
  parseKeystore,
  readKeystoreFile,
  writeKeystoreFile,
  KEYSTORE_FILE_MODE,
} from '../../identity/keystore.ts'
import { KeystoreFormatError } from '../../identity/errors.ts'
import {
  KEYCHAIN_MARKER_VERSION,
  KEYCHAIN_SERVICE,
  KeychainError,
  KeychainMarkerError,
  KeychainUnavailableError,
  openSecretStore,
  readKeychainMarker,
  removeKeychainMarker,
  writeKeychainMarker,
  keychainMarkerPath,
} from '../../identity/keychain.ts'
import { createContext, type CliContext, type CliIo } from '../context.ts'
import { CliError, HomeStateError } from '../errors.ts'
import { obtainPassword, unlockHomeKeystore, PASSWORD_ENV } from '../password.ts'

interface KeysOptions {
  keychain?: boolean
  passwordFile?: string
}

const KEYCHAIN_HELP = `
--keychain keeps the keystore's password in the platform's key store (macOS Keychain, or the
Secret Service of the desktop session on Linux: gnome-keyring, KWallet, KeePassXC) and writes
<home>/keychain.json: commands in this home then need no password, after --password-file and
${PASSWORD_ENV}. The password is checked against the keystore first. --no-keychain removes the
entry and the marker: back to the password typed, from a file or from ${PASSWORD_ENV}. The
keystore file stays encrypted either way (docs/keychain.md).`

/**
 * The password file of `keys export` / `keys import`: commander hands `--password-file` to the
 * `keys` group, which declares it too (for `keys --keychain`). `--keychain` / `--no-keychain`
 * after a subcommand would be ignored the same way, so they are refused.
 */
function passwordFileOf(command: Command): string | undefined {
  const group = command.parent?.opts<KeysOptions>() ?? {}
  if (group.keychain !== undefined) {
    const flag = group.keychain ? '--keychain' : '--no-keychain'
    throw new CliError(`${flag} is an option of \`donghae keys\` alone, not of \`keys ${command.name()}\``)
  }
  return command.opts<KeysOptions>().passwordFile ?? group.passwordFile
}

export function registerKeys(program: Command, io: CliIo): void {
  const keys = program
    .command('keys')
    .description('export or import the encrypted keystore; keep its password in the platform key store')
    .option('--keychain', "keep the keystore's password in the macOS Keychain / Secret Service (see below)")
    .option('--no-keychain', 'remove it from there: back to the password file, environment or prompt')
    .option('--password-file <file>', 'read the password from a file (with --keychain)')
    .addHelpText('after', KEYCHAIN_HELP)
    .action(async (options: KeysOptions, command: Command) => {
      if (options.keychain === undefined) return command.help({ error: true })
      const ctx = createContext(command, io)
      if (options.keychain) await storeInKeychain(ctx, options.passwordFile)
      else await forgetKeychain(ctx)
    })

  keys
    .command('export')
    .description('check the password, then write the encrypted keystore to a file (or stdout)')
    .option('--out <file>', 'write to this file (mode 0600, never overwritten) instead of stdout')
    .option('--password-file <file>', 'read the password from a file')
    .addHelpText(
      'after',
      '\nThe export stays encrypted with the same password.\n\nExamples:\n  $ donghae keys export --out backup.json\n  $ donghae keys export > backup.json',
    )
    .action(async (options: { out?: string }, command: Command) => {
      const passwordFile = passwordFileOf(command)
      const ctx = createContext(command, io)
      const { file } = await unlockHomeKeystore(
        ctx.home,
        { prompt: 'Keystore password' },
        { passwordFile, env: io.env, stdin: io.stdin, stderr: io.stderr },
      )
      if (options.out === undefined) {
        ctx.out(JSON.stringify(file, null, 2))
      } else {
        await writeKeystoreFile(options.out, file)
        io.stderr.write(`exported ${file.did} to ${options.out}\n`)
      }
    })

  keys
    .command('import')
    .description("install a keystore file as this home's identity (creating the home if needed)")
    .argument('<file>', 'a keystore written by `donghae keys export`')
    .option('--force', 'replace an existing keystore (the old one is kept as keystore.json.bak-<time>)')
    .option('--password-file <file>', "read the imported keystore's password from a file")
    .addHelpText(
      'after',
      '\nExamples:\n  $ donghae --home ~/.donghae-restore keys import backup.json\n  $ donghae keys import backup.json --force',
    )
    .action(async (path: string, options: { force?: boolean }, command: Command) => {
      const passwordFile = passwordFileOf(command)
      const ctx = createContext(command, io)
      let text: string
      try {
        text = await readFile(path, 'utf8')
      } catch (err) {
        throw new CliError(`cannot read ${path}: ${(err as Error).message}`)
      }
      const file = parseKeystore(text)
      const password = await obtainPassword(
        { prompt: `Password of ${path}` },
        { passwordFile, env: io.env, stdin: io.stdin, stderr: io.stderr },
      )
      await decryptKeystore(file, password)
      await mkdir(ctx.home.dir, { recursive: true, mode: 0o700 })
      let existing: string | undefined
      try {
        existing = (await readKeystoreFile(ctx.home.keystore)).did
      } catch (err) {
        if (!(err instanceof KeystoreFormatError)) throw err
        if (!/no keystore/.test((err as Error).message)) existing = 'an unreadable keystore'
      }
      if (existing !== undefined && options.force !== true) {
        throw new HomeStateError(
          `${ctx.home.keystore} already holds ${existing}; pass --force to replace it (a backup is kept)`,
        )
      }
      if (existing !== undefined) {
        const backup = `${ctx.home.keystore}.bak-${new Date().toISOString().replace(/[:.]/g, '-')}`
        await copyFile(ctx.home.keystore, backup)
        io.stderr.write(`previous keystore saved as ${backup}\n`)
      }
      await writeKeystoreFile(ctx.home.keystore, file, { overwrite: existing !== undefined })
      if (existing !== file.did && (await removeKeychainMarker(ctx.home.dir))) {
        io.stderr.write(
          `this home no longer reads its password from the platform key store (that entry was for ${existing ?? 'the old keystore'}); run \`donghae keys --keychain\` to keep the new one there\n`,
        )
      }
      await writeFile(ctx.home.config, `${JSON.stringify(defaultConfig(), null, 2)}\n`, {
        mode: KEYSTORE_FILE_MODE,
        flag: 'wx',
      }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err
      })
      ctx.out(`imported ${file.did} into ${ctx.home.dir}`)
    })
}

/** `keys --keychain`: checks the password against the keystore, stores it, reads it back, then writes the marker. */
async function storeInKeychain(ctx: CliContext, passwordFile: string | undefined): Promise<void> {
  const file = await readKeystoreFile(ctx.home.keystore)
  const store = await openSecretStore()
  const password = await obtainPassword(
    { prompt: `Password of ${file.did}` },
    { passwordFile, env: ctx.env, stdin: ctx.stdin, stderr: ctx.stderr },
  )
  await decryptKeystore(file, password)
  await store.set(file.did, password)
  if ((await store.get(file.did)) !== password) {
    throw new KeychainError(
      `the ${store.describe()} did not give back the password just stored; nothing was changed in ${ctx.home.dir}`,
    )
  }
  await writeKeychainMarker(ctx.home.dir, {
    version: KEYCHAIN_MARKER_VERSION,
    service: KEYCHAIN_SERVICE,
    account: file.did,
    backend: store.backend,
  })
  ctx.out(
    `the password of ${file.did} is now kept in the ${store.describe()} (service ${KEYCHAIN_SERVICE}, account ${file.did})`,
  )
  ctx.out(
    `commands that open ${ctx.home.keystore} read it from there when no --password-file or ${PASSWORD_ENV} is given; \`donghae keys --no-keychain\` undoes this`,
  )
}

/**
 * `keys --no-keychain`: removes the entry of this home's keystore (never the one a marker names,
 * which may have been written by someone else) and the marker. An unreachable store leaves its
 * entry behind, says so, and still removes the marker.
 */
async function forgetKeychain(ctx: CliContext): Promise<void> {
  const { did } = await readKeystoreFile(ctx.home.keystore)
  const marker = await readKeychainMarker(ctx.home.dir).catch((err: unknown) => {
    if (!(err instanceof KeychainMarkerError)) throw err
    ctx.stderr.write(`donghae: removing an invalid marker: ${err.message}\n`)
    return undefined
  })
  let entry = 'no entry'
  try {
    const store = await openSecretStore()
    entry = (await store.delete(did))
      ? `removed the entry ${KEYCHAIN_SERVICE}/${did} from the ${store.describe()}`
      : `the ${store.describe()} held no entry for ${did}`
  } catch (err) {
    if (!(err instanceof KeychainUnavailableError)) throw err
    entry = `could not remove the entry ${KEYCHAIN_SERVICE}/${did}: ${err.message}; remove it from the key store by hand`
    if (marker === undefined) entry = `no key store here (${err.message})`
  }
  const removed = await removeKeychainMarker(ctx.home.dir)
  ctx.out(entry)
  ctx.out(
    removed
      ? `removed ${keychainMarkerPath(ctx.home.dir)}: the password now comes from --password-file, ${PASSWORD_ENV} or the prompt`
      : `${ctx.home.dir} was not using the key store`,
  )
}
