/**
 * Mempool admission under spam, per core, against the Ed25519 verification ceiling measured in
 * the same run. The junk is what `test/attacks/tx-spam.test.ts` gossips: well-formed,
 * well-signed transfers from fresh keys with no money, offering the largest fee there is. The
 * admission work is the node's own gossip path for a transaction, `decodeTx` then
 * `Mempool.precheck` (chain, kind, fee floor, body, nonce window, payable), which refuses junk
 * before its signature; a node whose admission verified the signature first could check no more
 * junk per core than it can verify signatures. A second line is the whole admission of payable
 * transactions (signature included, inline), for comparison.
 */
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../src/identity/did-key.ts'
import { DEFAULT_PARAMS, type GenesisDoc } from '../src/chain/genesis.ts'
import { StateMachine } from '../src/chain/host.ts'
import { Mempool } from '../src/chain/mempool.ts'
import { StateOverlay } from '../src/chain/state-view.ts'
import { SparseMerkleTree } from '../src/chain/state/smt.ts'
import { TxError } from '../src/chain/errors.ts'
import { decodeTx, encodeTx, signTx } from '../src/chain/tx.ts'
import { bankModule, feeCollector } from '../src/bank/bank.ts'
import { stakingModule } from '../src/staking/staking.ts'
import { ed25519VerifyRate, line, measure, type BenchLine, type MeasureOptions } from './harness.ts'

export const MEMPOOL_BENCH_NAMES = ['mempool-admission-spam', 'mempool-admission-valid']

const did = (k: Ed25519KeyPair): string => didFromEd25519PublicKey(k.publicKey)

export function mempoolBenches(options: MeasureOptions, quick = false): BenchLine[] {
  const ceiling = ed25519VerifyRate(options)
  const funded = Array.from({ length: quick ? 20 : 200 }, () => Ed25519KeyPair.generate())
  const validator = Ed25519KeyPair.generate()
  const genesis: GenesisDoc = {
    chainId: 'donghae-bench',
    genesisTime: Date.now(),
    params: DEFAULT_PARAMS,
    accounts: funded.map((k) => ({ did: did(k), balance: 1_000_000_000n })),
    validators: [{ did: did(validator), stake: 100_000n }],
  }
  const machine = new StateMachine({
    chainId: genesis.chainId,
    modules: [bankModule, stakingModule(genesis.params)],
    fees: feeCollector,
    minFee: genesis.params.minFee,
  })
  const overlay = new StateOverlay(SparseMerkleTree.empty())
  machine.initGenesis(overlay, genesis)
  const state = SparseMerkleTree.empty().apply(overlay.changes())
  const recipient = did(Ed25519KeyPair.generate())
  const transfer = (key: Ed25519KeyPair, nonce: bigint, fee: bigint): Uint8Array =>
    encodeTx(
      signTx(key, { chainId: genesis.chainId, nonce, fee, kind: 'bank.transfer', body: { to: recipient, amount: 1n } }),
    )

  const junk = Array.from({ length: quick ? 200 : 2_000 }, () =>
    transfer(Ed25519KeyPair.generate(), 0n, 2n ** 64n - 1n),
  )
  const spamPool = new Mempool(machine)
  let i = 0
  const spam = measure((n) => {
    for (let k = 0; k < n; k++) {
      const bytes = junk[i++ % junk.length] as Uint8Array
      try {
        spamPool.precheck(bytes, state, decodeTx(bytes))
        throw new Error('junk was admitted')
      } catch (err) {
        if (!(err instanceof TxError && err.reason === 'insufficient-funds')) throw err
      }
    }
  }, options)

  // Payable transfers, admitted in full (signature inline); a fresh pool when one fills up.
  const valid = funded.flatMap((key) => Array.from({ length: 50 }, (_, n) => transfer(key, BigInt(n), 1n)))
  let pool = new Mempool(machine, { maxTxs: valid.length })
  let j = 0
  const admitted = measure((n) => {
    for (let k = 0; k < n; k++) {
      if (j === valid.length) {
        pool = new Mempool(machine, { maxTxs: valid.length })
        j = 0
      }
      const bytes = valid[j++] as Uint8Array
      pool.add(bytes, state, { decoded: decodeTx(bytes) })
    }
  }, options)

  const baseline = {
    impl: 'ed25519-verify, node:crypto, one core (what a check-the-signature-first admission could reach)',
    value: ceiling.perSecond,
  }
  return [
    line({
      bench: 'mempool-admission-spam',
      impl: 'decodeTx + Mempool.precheck of unfunded max-fee transfers (refused as insufficient-funds), one core',
      value: spam.perSecond,
      unit: 'tx/s',
      baseline,
      rounds: spam.rounds,
    }),
    line({
      bench: 'mempool-admission-valid',
      impl: 'decodeTx + Mempool.add of payable transfers, signature verified inline, one core',
      value: admitted.perSecond,
      unit: 'tx/s',
      baseline,
      rounds: admitted.rounds,
    }),
  ]
}

if (import.meta.main === true) {
  for (const l of mempoolBenches({})) process.stdout.write(`${JSON.stringify(l)}\n`)
}
