import { Option, type Command } from 'commander'
import {
  DID_DOCUMENT_FORMATS,
  DEFAULT_DID_DOCUMENT_FORMAT,
  resolveDidKey,
  type DidDocumentFormat,
} from '../../identity/did-key.ts'
import { createContext, type CliIo } from '../context.ts'
import type { DidDocument } from '../../identity/did-key.ts'
import { DonghaeClient } from '../../api/client.ts'
import { ApiError } from '../../api/errors.ts'
import { DEFAULT_NODE_URL, NODE_URL_ENV } from '../../api/constants.ts'

interface ServiceEntry {
  id: string
  type: string
  serviceEndpoint: string
}

export function registerDid(program: Command, io: CliIo): void {
  const did = program.command('did').description('work with decentralized identifiers (did:key)')
  did
    .command('resolve')
    .description('print the DID document of a did:key as JSON')
    .argument('<did>', 'a did:key, e.g. did:key:z6Mk\u2026')
    .addOption(
      new Option('--format <format>', 'verification method format')
        .choices(DID_DOCUMENT_FORMATS)
        .default(DEFAULT_DID_DOCUMENT_FORMAT),
    )
    .addHelpText(
      'after',
      `
The document is derived from the key itself (W3C did:key method); for an Ed25519 key it
includes the X25519 keyAgreement key derived from it. When a node is running (--node, env
DONGHAE_NODE, default http://127.0.0.1:26657), the DID's signed record in the DHT adds its
service endpoints and p2p addresses as \`service\` entries. An invalid DID exits with status 1
and one line naming the did:key error (invalidDid, invalidPublicKeyLength, ...).

Examples:
  $ donghae did resolve did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp
  $ donghae did resolve did:key:z6Mk\u2026 --format Multikey`,
    )
    .option('--no-dht', "do not ask a running node for the DID's record in the DHT")
    .action(async (value: string, options: { format: DidDocumentFormat; dht: boolean }, command: Command) => {
      const ctx = createContext(command, io)
      const doc: DidDocument & { service?: ServiceEntry[] } = resolveDidKey(value, { format: options.format })
      if (options.dht) {
        const explicit = command.optsWithGlobals<{ node?: string }>().node ?? io.env[NODE_URL_ENV]
        const client = new DonghaeClient(explicit ?? DEFAULT_NODE_URL, { timeoutMs: 3_000 })
        try {
          const record = await client.didRecord(value)
          doc.service = [
            ...record.services,
            ...record.addresses.map((address, i) => ({
              id: `${value}#p2p-${i}`,
              type: 'LibP2PNode',
              serviceEndpoint: address,
            })),
          ]
        } catch (err) {
          // No node running, or no record: the document derived from the key stands alone.
          if (explicit !== undefined && err instanceof ApiError && err.code === 'UNREACHABLE')
            io.stderr.write(`note: ${err.message}; showing the key's document only\n`)
        }
      }
      ctx.json(doc)
    })
}
