/**
 * Files a node fetches from peers and then reads: FL weight vectors and model blobs, an arena
 * task's validation set, and genesis documents (JSON, e.g. `donghae node --genesis`). The first
 * byte picks the reader. Oracle: `expectTyped`.
 */
import { parseGenesis, genesisToJson, DEFAULT_PARAMS } from '../../../src/chain/genesis.ts'
import { decodeVector, encodeVector, weightsDigest } from '../../../src/fl/weights.ts'
import { decodeModel, encodeModel } from '../../../src/fl/blob.ts'
import { decodeValidationSet, encodeValidationSet } from '../../../src/arena/evaluate.ts'
import { expectTyped, type FuzzTarget } from '../harness.ts'

const WEIGHTS = new Float32Array([0.5, -1, 2, 0])
const EXPECT = { length: WEIGHTS.length, digest: weightsDigest(WEIGHTS) }
const text = (s: string): Uint8Array => new TextEncoder().encode(s)

function cat(head: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + body.length)
  out[0] = head
  out.set(body, 1)
  return out
}

const genesis = {
  chainId: 'donghae-fuzz',
  genesisTime: 1_700_000_000_000,
  params: DEFAULT_PARAMS,
  accounts: [{ did: 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', balance: 1_000n }],
  validators: [{ did: 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', stake: 10n }],
}

export const blobsTarget: FuzzTarget = {
  name: 'blobs',
  description:
    'files read after a fetch: FL vectors and model blobs, arena validation sets, genesis JSON (first byte picks)',
  seeds: () => [
    cat(0, encodeVector(WEIGHTS)),
    cat(1, encodeModel({ task: 1, round: 0, weights: WEIGHTS })),
    cat(
      2,
      encodeValidationSet({
        features: new Float32Array([0, 1, 1, 0]),
        labels: new Int32Array([0, 1]),
        featureCount: 2,
        classCount: 2,
      }),
    ),
    cat(3, text(JSON.stringify(genesisToJson(genesis)))),
  ],
  run(input) {
    const body = input.subarray(1)
    return expectTyped(() => {
      switch ((input[0] ?? 0) % 4) {
        case 0:
          return decodeVector(body)
        case 1:
          return decodeModel(body, EXPECT)
        case 2:
          return decodeValidationSet(body)
        default: {
          let json: unknown
          try {
            json = JSON.parse(new TextDecoder().decode(body))
          } catch {
            return undefined // not JSON: the CLI refuses the file before parseGenesis
          }
          return parseGenesis(json)
        }
      }
    })
  },
  dictionary: ['"params"', '"accounts"', '"validators"', '"balance"', '"stake"', '-1', '1e400', 'null', '{}', '[]'],
}
