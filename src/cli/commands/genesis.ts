import { writeFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { toHex } from '../../core/bytes.ts'
import {
  DEFAULT_PARAMS,
  IDLE_EMPTY_BLOCK_INTERVAL_MS,
  genesisHash,
  genesisToJson,
  parseGenesis,
  readGenesisFile,
  type GenesisDoc,
} from '../../chain/genesis.ts'
import { readKeystoreFile } from '../../identity/keystore.ts'
import { createContext, type CliContext, type CliIo } from '../context.ts'
import { CliError } from '../errors.ts'
import { parseParamOverrides } from '../genesis-params.ts'

interface GenesisOptions {
  chainId: string
  validator: string[]
  account: string[]
  param: string[]
  time?: string
  out?: string
  force?: boolean
  check?: string
}

const collect = (value: string, previous: string[]): string[] => [...previous, value]

async function resolveDid(ctx: CliContext, value: string): Promise<string> {
  return value === 'self' ? (await readKeystoreFile(ctx.home.keystore)).did : value
}

function split(spec: string, what: string, defaultAmount?: string): [string, string] {
  const at = spec.lastIndexOf(':')
  const hasAmount = at > 0 && /^[0-9]+$/.test(spec.slice(at + 1))
  if (hasAmount) return [spec.slice(0, at), spec.slice(at + 1)]
  if (defaultAmount !== undefined) return [spec, defaultAmount]
  throw new CliError(`${what} ${JSON.stringify(spec)} must be DID:AMOUNT (AMOUNT in base units)`)
}

export function registerGenesis(program: Command, io: CliIo): void {
  program
    .command('genesis')
    .description('create a genesis file (chain id, parameters, validators with stake, balances), or check one')
    .option('--chain-id <id>', 'chain identifier', 'donghae-local')
    .option('--validator <did[:stake]>', 'a genesis validator; "self" is this home\'s DID (repeatable)', collect, [])
    .option('--account <did:balance>', 'an initial balance in base units; "self:N" works too (repeatable)', collect, [])
    .option('--param <key=value>', `override a chain parameter (repeatable); see --json output for names`, collect, [])
    .option('--time <ms>', 'genesis time, milliseconds since the epoch (default: now)')
    .option('--out <file>', 'write to this file instead of stdout')
    .option('--force', 'overwrite --out if it exists')
    .option('--check <file>', 'only validate an existing genesis file')
    .addHelpText(
      'after',
      `
Validators without a stake get 10000 base units. Amounts are decimal base units.

Examples:
  $ donghae genesis --validator self --account self:1000000 --out genesis.json
  $ donghae genesis --chain-id demo --validator did:key:z6Mk\u2026:50000 --param epochLength=100
  $ donghae genesis --check genesis.json     # prints its hash, for \`receipt verify --trust-hash\``,
    )
    .action(async (options: GenesisOptions, command: Command) => {
      const ctx = createContext(command, io)
      if (options.check !== undefined) {
        const doc = await readGenesisFile(options.check)
        ctx.out(
          `${options.check}: chain ${doc.chainId}, ${doc.validators.length} validators, ${doc.accounts.length} accounts, hash ${toHex(genesisHash(doc))} \u2014 valid`,
        )
        return
      }
      if (options.validator.length === 0)
        throw new CliError('at least one --validator is needed (use "self" for this node)')
      const params: Record<string, unknown> = {
        ...(
          genesisToJson({ chainId: 'x', genesisTime: 0, params: DEFAULT_PARAMS, accounts: [], validators: [] }) as {
            params: object
          }
        ).params,
        // a new network idles without empty blocks unless --param emptyBlockIntervalMs=0 says otherwise
        emptyBlockIntervalMs: IDLE_EMPTY_BLOCK_INTERVAL_MS,
        // and prunes settled jobs' records from its first block (--param pruneFromHeight=0: never)
        pruneFromHeight: 1,
      }
      Object.assign(params, parseParamOverrides(options.param))
      const validators = await Promise.all(
        options.validator.map(async (spec) => {
          const [did, stake] = split(spec, '--validator', '10000')
          return { did: await resolveDid(ctx, did), stake }
        }),
      )
      const accounts = await Promise.all(
        options.account.map(async (spec) => {
          const [did, balance] = split(spec, '--account')
          return { did: await resolveDid(ctx, did), balance }
        }),
      )
      const doc: GenesisDoc = parseGenesis({
        chainId: options.chainId,
        genesisTime: options.time === undefined ? Date.now() : Number(options.time),
        params,
        accounts,
        validators,
      })
      const text = `${JSON.stringify(genesisToJson(doc), null, 2)}\n`
      if (options.out === undefined) {
        io.stdout.write(text)
        return
      }
      try {
        await writeFile(options.out, text, { flag: options.force === true ? 'w' : 'wx' })
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST')
          throw new CliError(`${options.out} exists; pass --force to overwrite it`)
        throw err
      }
      io.stderr.write(`wrote ${options.out}: chain ${doc.chainId}, ${doc.validators.length} validators\n`)
    })
}
