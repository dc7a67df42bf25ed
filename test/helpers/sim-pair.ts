/**
 * A worker and a gateway on the inference components' simulated network
 * (src/inference/sim/network.ts): one registered tensor model whose "file" is a few bytes, the
 * gateway funded, the worker bonded and serving it from the genesis when `bonded`.
 */
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../../src/identity/did-key.ts'
import { DEFAULT_PARAMS, type GenesisDoc } from '../../src/chain/genesis.ts'
import { utf8 } from '../../src/core/bytes.ts'
import { cidOfBytes, RAW_CODE } from '../../src/core/cid.ts'

export const T0 = 1_700_000_000_000
export const RUNTIME = 'onnxruntime-node/1.30.0 linux-x64'
export const BYTES = utf8('weights')
export const MODEL = cidOfBytes(BYTES, RAW_CODE).toString()
export const BOND = 10_000n

/** The genesis: the model, the gateway's and the worker's balances, and the worker bonded when `bonded`. */
export function pairGenesis(
  workerKey: Ed25519KeyPair,
  gatewayKey: Ed25519KeyPair,
  options: { bonded: boolean; chainId: string; gatewayBalance?: bigint },
): GenesisDoc {
  const worker = didFromEd25519PublicKey(workerKey.publicKey)
  const gateway = didFromEd25519PublicKey(gatewayKey.publicKey)
  return {
    chainId: options.chainId,
    genesisTime: T0,
    params: DEFAULT_PARAMS,
    accounts: [
      { did: gateway, balance: options.gatewayBalance ?? 10n ** 12n },
      { did: worker, balance: 10n ** 12n },
    ],
    validators: [{ did: didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey), stake: 10_000n }],
    inference: {
      models: [
        {
          owner: gateway,
          cid: MODEL,
          name: 'm',
          version: '1',
          kind: 'tensor',
          inputs: [{ name: 'x', type: 'float32', dims: [null, 1] }],
          outputs: [{ name: 'y', type: 'float32', dims: [null, 1] }],
          size: BYTES.length,
          price: 100n,
          tolerance: { maxAbsPpm: 1_000, top1: true },
        },
      ],
      workers: options.bonded ? [{ did: worker, bond: BOND, ep: 'cpu', runtime: RUNTIME, models: [MODEL] }] : [],
    },
  }
}
