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
import { createContext, type CliIo } from '../context.ts'
import { CliError, HomeStateError } from '../errors.ts'
import { obtainPassword } from '../password.ts'

export function registerKeys(program: Command, io: CliIo): void {
  const keys = program.command('keys').description('export or import the encrypted keystore')

  keys
    .command('export')
    .description('check the password, then write the encrypted keystore to a file (or stdout)')
    .option('--out <file>', 'write to this file (mode 0600, never overwritten) instead of stdout')
    .option('--password-file <file>', 'read the password from a file')
    .addHelpText(
      'after',
      '\nThe export stays encrypted with the same password.\n\nExamples:\n  $ donghae keys export --out backup.json\n  $ donghae keys export > backup.json',
    )
    .action(async (options: { out?: string; passwordFile?: string }, command: Command) => {
      const ctx = createContext(command, io)
      const file = await readKeystoreFile(ctx.home.keystore)
      const password = await obtainPassword(
        { prompt: 'Keystore password' },
        { passwordFile: options.passwordFile, env: io.env, stdin: io.stdin, stderr: io.stderr },
      )
      await decryptKeystore(file, password)
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
    .action(async (path: string, options: { force?: boolean; passwordFile?: string }, command: Command) => {
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
        { passwordFile: options.passwordFile, env: io.env, stdin: io.stdin, stderr: io.stderr },
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
      await writeFile(ctx.home.config, `${JSON.stringify(defaultConfig(), null, 2)}\n`, {
        mode: KEYSTORE_FILE_MODE,
        flag: 'wx',
      }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err
      })
      ctx.out(`imported ${file.did} into ${ctx.home.dir}`)
    })
}
