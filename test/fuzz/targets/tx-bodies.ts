/**
 * Transaction bodies: every chain module's `decodeBody` (bank, staking, inference, experts,
 * governance, arena, FL), the strict typing a body gets before `apply`. An input is the canonical
 * dag-cbor of `[kind index, body]`, so the structural mutations reach the body. The seeds are shallow (an empty
 * map and a few common shapes per kind): the structural mutations and the outcome guidance grow
 * them field by field from the decoders' own error messages.
 */
import { decode, encode } from '../../../src/core/codec.ts'
import { DEFAULT_PARAMS } from '../../../src/chain/genesis.ts'
import type { ChainModule, TxHandler } from '../../../src/chain/host.ts'
import { bankModule } from '../../../src/bank/bank.ts'
import { stakingModule } from '../../../src/staking/staking.ts'
import { inferenceModule } from '../../../src/inference/chain/module.ts'
import { expertsModule } from '../../../src/experts/chain/module.ts'
import { governanceModule } from '../../../src/governance/chain/module.ts'
import { arenaModule } from '../../../src/arena/chain/module.ts'
import { flModule } from '../../../src/fl/chain/module.ts'
import { expectTyped, type FuzzTarget } from '../harness.ts'

const DID = 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK'
const modules: ChainModule[] = [
  bankModule,
  stakingModule(DEFAULT_PARAMS),
  inferenceModule(DEFAULT_PARAMS),
  expertsModule(DEFAULT_PARAMS),
  governanceModule(DEFAULT_PARAMS),
  arenaModule(DEFAULT_PARAMS),
  flModule(DEFAULT_PARAMS),
]
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each handler has its own body type
const handlers: Array<[string, TxHandler<any>]> = modules.flatMap((m) =>
  Object.entries(m.txs ?? {}).map(([action, h]): [string, TxHandler<unknown>] => [`${m.name}.${action}`, h]),
)

const SHAPES: unknown[] = [
  {},
  { to: DID, amount: 5n },
  { amount: 5n },
  { id: 1, option: 'yes' },
  { cid: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy', name: 'm', price: 1n },
  { task: 1, round: 0, cid: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy' },
]

export const txBodiesTarget: FuzzTarget = {
  name: 'tx-bodies',
  description: `every chain module's decodeBody (${handlers.length} transaction kinds), input dag-cbor [kind, body]`,
  seeds: () => handlers.flatMap((_, i) => SHAPES.map((shape) => encode([i, shape]))),
  run(input) {
    let frame: unknown
    try {
      frame = decode(input)
    } catch {
      return 'not dag-cbor'
    }
    if (!Array.isArray(frame) || frame.length !== 2 || typeof frame[0] !== 'number') return 'not [kind, body]'
    const [kind, handler] = handlers[Math.abs(Math.trunc(frame[0])) % handlers.length] as [string, TxHandler<unknown>]
    return `${kind} ${expectTyped(() => handler.decodeBody(frame[1]))}`
  },
  cbor: true,
}
