import { Option, type Command } from 'commander'
import {
  DID_DOCUMENT_FORMATS,
  DEFAULT_DID_DOCUMENT_FORMAT,
  resolveDidKey,
  type DidDocumentFormat,
} from '../../identity/did-key.ts'
import { createContext, type CliIo } from '../context.ts'

export function registerDid(program: Command, io: CliIo): void {
  const did = program.command('did').description('work with decentralized identifiers (did:key)')
  did
    .command('resolve')
    .description('print the DID document of a did:key as JSON')
    .argument('<did>', 'a did:key, e.g. did:key:z6Mk…')
    .addOption(
      new Option('--format <format>', 'verification method format')
        .choices(DID_DOCUMENT_FORMATS)
        .default(DEFAULT_DID_DOCUMENT_FORMAT),
    )
    .addHelpText(
      'after',
      `
The document is derived from the key itself (W3C did:key method); for an Ed25519 key it
includes the X25519 keyAgreement key derived from it. An invalid DID exits with status 1
and one line naming the did:key error (invalidDid, invalidPublicKeyLength, ...).

Examples:
  $ donghae did resolve did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp
  $ donghae did resolve did:key:z6Mk… --format Multikey`,
    )
    .action((value: string, options: { format: DidDocumentFormat }, command: Command) => {
      const ctx = createContext(command, io)
      ctx.json(resolveDidKey(value, { format: options.format }))
    })
}
