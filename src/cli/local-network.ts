/**
 * Keys and genesis of a development network kept in one directory (`localnet`, `devnet`):
 * node i's home is `<dir>/node<i>` with its keystore; `<dir>/genesis.json` is shared. The
 * keystores use a well-known password: these networks hold play money only.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import { encryptKeystore, loadKeystore, writeKeystoreFile } from '../identity/keystore.ts'
import {
  DEFAULT_PARAMS,
  IDLE_EMPTY_BLOCK_INTERVAL_MS,
  genesisToJson,
  parseGenesis,
  readGenesisFile,
  type GenesisDoc,
} from '../chain/genesis.ts'
import { parseUint64 } from '../core/uint.ts'
import { CliError } from './errors.ts'
import { parseParamOverrides } from './genesis-params.ts'
import { demoModels } from '../inference/demo-models.ts'
import { demoExpertsGenesis } from '../experts/genesis.ts'
import { RUNTIME_NAME } from '../inference/runtime-facts.ts'

/** Development-network keystores are encrypted with this well-known password. */
export const LOCALNET_PASSWORD = 'donghae-localnet-insecure'
const VALIDATOR_BALANCE = 1_000_000_000n
const VALIDATOR_STAKE = 100_000n
/** Every development node is also a worker with this bond, serving the demo models. */
const WORKER_BOND = 100_000n
/** Price per call of the demo models, base units. */
const DEMO_MODEL_PRICE = 10n
/** The demo language model's prices, per output token and per prompt token. */
const DEMO_LM_OUTPUT_PRICE = 2n
const DEMO_LM_PROMPT_PRICE = 1n

export async function loadOrCreateKeys(
  dir: string,
  count: number,
  progress: (line: string) => void,
): Promise<Ed25519KeyPair[]> {
  const keys: Ed25519KeyPair[] = []
  for (let i = 0; i < count; i++) {
    const nodeDir = join(dir, `node${i}`)
    const path = join(nodeDir, 'keystore.json')
    await mkdir(nodeDir, { recursive: true, mode: 0o700 })
    try {
      keys.push(await loadKeystore(path, LOCALNET_PASSWORD))
      progress(`  node${i}: key loaded`)
    } catch (err) {
      if (!/no keystore/.test((err as Error).message)) throw err
      const key = Ed25519KeyPair.generate()
      await writeKeystoreFile(path, await encryptKeystore(key, LOCALNET_PASSWORD))
      keys.push(key)
      progress(`  node${i}: new key ${didFromEd25519PublicKey(key.publicKey)}`)
    }
  }
  return keys
}

/**
 * The network's genesis in `dir`, or a new one: the demo models and experts, `fund`'s balances, and
 * `overrides` (`--param key=value`: decimal strings, checked like any genesis) over the demo
 * parameters. Overrides for a network whose genesis exists already are refused, not ignored.
 */
export async function loadOrCreateGenesis(
  dir: string,
  keys: Ed25519KeyPair[],
  fund: string[],
  chainId = 'donghae-localnet',
  overrides: readonly string[] = [],
): Promise<GenesisDoc> {
  const path = join(dir, 'genesis.json')
  try {
    await readFile(path)
    if (overrides.length > 0)
      throw new CliError(
        `--param applies to a new network, and ${path} exists: remove ${dir} (or use another --home) to start one with ${overrides.join(', ')}`,
      )
    return await readGenesisFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const dids = keys.map((k) => didFromEd25519PublicKey(k.publicKey))
  const funded = fund.map((spec) => {
    const at = spec.lastIndexOf(':')
    if (at < 1) throw new CliError(`--fund ${JSON.stringify(spec)} must be DID:AMOUNT`)
    return { did: spec.slice(0, at), balance: parseUint64(spec.slice(at + 1), '--fund amount').toString() }
  })
  const models = await demoModels()
  // A small network has few workers: a dispute's quorum is the other two of four nodes. A
  // worker whose gateway vanished settles its own receipts 5 s after their deadline (a minute on
  // a real network), so a demonstration does not wait.
  const params = {
    ...DEFAULT_PARAMS,
    quorumSize: Math.max(1, Math.min(DEFAULT_PARAMS.quorumSize, keys.length - 2)),
    gatewayGraceMs: 5_000,
    emptyBlockIntervalMs: IDLE_EMPTY_BLOCK_INTERVAL_MS,
    pruneFromHeight: 1,
  }
  const given = parseParamOverrides(overrides)
  // the demo Mixture-of-Experts family: its MetaBlock and its 18 blocks, mined by the nodes in turn
  const experts = await demoExpertsGenesis(keys)
  const doc = parseGenesis({
    chainId,
    genesisTime: Date.now(),
    params: {
      ...(
        genesisToJson({ chainId: 'x', genesisTime: 0, params, accounts: [], validators: [] }) as {
          params: Record<string, unknown>
        }
      ).params,
      ...given,
    },
    inference: {
      models: models.map((m) => ({
        owner: dids[0],
        cid: m.cid,
        name: m.name,
        version: m.version,
        // a language model is priced per token: output tokens cost more than prompt tokens
        price: (m.kind === 'lm' ? DEMO_LM_OUTPUT_PRICE : DEMO_MODEL_PRICE).toString(),
        ...(m.kind === 'lm'
          ? { promptPrice: DEMO_LM_PROMPT_PRICE.toString(), files: m.files, contextLength: m.contextLength }
          : {}),
        kind: m.kind,
        inputs: m.inputs,
        outputs: m.outputs,
        tolerance: m.tolerance,
        size: m.size,
        ...(m.codec === undefined ? {} : { codec: m.codec }),
      })),
      // every node declares this machine's runtime and the demo models (a node on another
      // provider re-declares itself with inference.serve when it starts)
      workers: dids.map((did) => ({
        did,
        bond: WORKER_BOND.toString(),
        ep: 'cpu',
        runtime: RUNTIME_NAME,
        models: models.map((m) => m.cid),
      })),
    },
    accounts: [...dids.map((did) => ({ did, balance: VALIDATOR_BALANCE.toString() })), ...funded],
    validators: dids.map((did) => ({ did, stake: VALIDATOR_STAKE.toString() })),
  })
  doc.experts = experts
  await writeFile(path, `${JSON.stringify(genesisToJson(doc), null, 2)}\n`, { flag: 'wx' })
  return doc
}
