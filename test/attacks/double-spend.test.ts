// Attack (issue 10.3), "free inference and double spending": before, workers ran direct jobs
// without checking that the client could pay, and gateways reserved funds only in memory, so a
// client spent one balance at several gateways, or moved it away before settlement. Now a client
// pays from a deposit locked for ONE gateway, a worker runs a paid job only when that deposit
// covers it beyond what the worker already ran against it, a deposit asked back stays spendable by
// settlements until it unlocks, and a gateway that dispatches more than a deposit holds is
// recorded on chain and refused by every worker. Run with the real worker and gateway components.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { didFromEd25519PublicKey } from '../../src/identity/did-key.ts'
import type { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { balanceOf } from '../../src/bank/bank.ts'
import { InferenceError } from '../../src/inference/errors.ts'
import { INFER_PROTOCOL } from '../../src/inference/constants.ts'
import {
  inputsCommitment,
  jobIdHex,
  receiptValue,
  signDispatch,
  signJob,
  type Receipt,
  type SignedJob,
} from '../../src/inference/job.ts'
import { hashTensorMap, type TensorMap } from '../../src/inference/tensor.ts'
import { decodeWorkAnswer, encodeWorkRequest } from '../../src/inference/worker.ts'
import { depositOf, overdrawnAt, settlementOf } from '../../src/inference/chain/state.ts'
import { SimMarket, PRICE } from '../helpers/sim-market.ts'

const markets: SimMarket[] = []
after(async () => {
  for (const m of markets) await m.close()
})

async function open(): Promise<SimMarket> {
  const m = await SimMarket.open({ seed: 7, gateways: 2, accounts: 2 })
  markets.push(m)
  return m
}

const did = (k: Ed25519KeyPair): string => didFromEd25519PublicKey(k.publicKey)

function jobFor(m: SimMarket, client: Ed25519KeyPair, gateway: string, inputs: TensorMap): SignedJob {
  const salt = randomBytes(16)
  return signJob(client, {
    chainId: m.net.genesis.chainId,
    gateway,
    model: m.model.cid,
    inputsHash: inputsCommitment(salt, hashTensorMap(inputs)),
    maxFee: PRICE,
    deadline: m.net.clock.now() + 20_000,
    salt,
  })
}

test('double spending: one deposit pays at one gateway only; a second gateway refuses the client', async () => {
  const m = await open()
  const [client] = m.accounts as [Ed25519KeyPair]
  const [g0, g1] = m.gateways as [SimMarket['gateways'][number], SimMarket['gateways'][number]]
  m.net.submit(client, 'inference.deposit', { gateway: g0.did, amount: PRICE * 2n })
  await m.block()
  const inputs = m.inputs(1)
  // at the gateway it deposited with: paid from the deposit
  const first = await g0.inference.gateway.infer({ model: m.model.cid, inputs, job: jobFor(m, client, g0.did, inputs) })
  assert.equal(first.receipt.job.gateway, g0.did)
  // the same client at a second gateway: nothing deposited there
  await assert.rejects(
    g1.inference.gateway.infer({ model: m.model.cid, inputs, job: jobFor(m, client, g1.did, inputs) }),
    (err: unknown) =>
      err instanceof InferenceError &&
      err.reason === 'insufficient-deposit' &&
      /deposited with gateway/.test(err.message),
  )
  // nor can it send g1 a job that spends its deposit with g0
  await assert.rejects(
    g1.inference.gateway.infer({ model: m.model.cid, inputs, job: jobFor(m, client, g0.did, inputs) }),
    (err: unknown) => err instanceof InferenceError && err.reason === 'bad-job' && /send it there/.test(err.message),
  )
  // two jobs in flight at g0 already hold the whole deposit: the third is refused before any worker runs
  const second = g0.inference.gateway.infer({ model: m.model.cid, inputs, job: jobFor(m, client, g0.did, inputs) })
  await assert.rejects(
    g0.inference.gateway.infer({ model: m.model.cid, inputs, job: jobFor(m, client, g0.did, inputs) }),
    (err: unknown) => err instanceof InferenceError && err.reason === 'insufficient-deposit',
  )
  await second
  await m.blocks(2)
  assert.equal(depositOf(m.net.state, did(client), g0.did).amount, 0n, 'the deposit paid the two jobs, once each')
})

test('free inference: a worker asked directly runs nothing for a client without a deposit, or beyond it', async () => {
  const m = await open()
  const [client, rogue] = m.accounts as [Ed25519KeyPair, Ed25519KeyPair]
  const worker = m.workers[0]!
  const transport = m.net.hub.join(did(rogue))
  const ask = async (job: SignedJob, inputs: TensorMap): Promise<{ receipt: Receipt }> =>
    decodeWorkAnswer(
      await transport.request(
        worker.did,
        INFER_PROTOCOL,
        encodeWorkRequest({ job, inputs, dispatch: signDispatch(rogue, job, worker.did), purpose: 'job' }),
      ),
      worker.did,
    )
  const inputs = m.inputs(2)
  // the rogue gateway dispatches a client's job that nobody deposited for
  await assert.rejects(
    ask(jobFor(m, client, did(rogue), inputs), inputs),
    (err: unknown) => err instanceof InferenceError && err.reason === 'insufficient-deposit',
  )
  // with one job's worth deposited, the worker runs one job and refuses a second it could not be paid for
  m.net.submit(client, 'inference.deposit', { gateway: did(rogue), amount: PRICE })
  await m.block()
  const ran = await ask(jobFor(m, client, did(rogue), inputs), inputs)
  assert.equal(ran.receipt.worker, worker.did)
  await assert.rejects(
    ask(jobFor(m, client, did(rogue), inputs), inputs),
    (err: unknown) => err instanceof InferenceError && err.reason === 'insufficient-deposit',
  )
})

test('moving the funds away before settlement: a deposit asked back still pays the jobs already run', async () => {
  const m = await open()
  const [client] = m.accounts as [Ed25519KeyPair]
  const g0 = m.gateways[0]!
  m.net.submit(client, 'inference.deposit', { gateway: g0.did, amount: PRICE })
  await m.block()
  const inputs = m.inputs(3)
  const answer = await g0.inference.gateway.infer({
    model: m.model.cid,
    inputs,
    job: jobFor(m, client, g0.did, inputs),
  })
  // the client asks the deposit back in the same block the gateway settles, and tries to take it
  m.net.submit(client, 'inference.undeposit', { gateway: g0.did, amount: PRICE })
  await m.block()
  m.net.submit(client, 'inference.reclaim', { gateway: g0.did })
  await m.block()
  assert.equal(m.net.refused['inference.reclaim:nothing-to-reclaim'], 1, 'nothing unlocks before depositUnlockMs')
  const settled = settlementOf(m.net.state, jobIdHex(answer.receipt.job))
  assert.equal(settled?.worker, answer.worker, 'the worker was paid from the deposit being asked back')
  const worker = m.workers.find((w) => w.did === answer.worker)!
  assert.ok(balanceOf(m.net.state, worker.did) > 0n)
})

test('over-dispatching: a gateway that hands one deposit to several workers is recorded overdrawn, then refused by all', async () => {
  const m = await open()
  const [client, rogue] = m.accounts as [Ed25519KeyPair, Ed25519KeyPair]
  const transport = m.net.hub.join(did(rogue))
  m.net.submit(client, 'inference.deposit', { gateway: did(rogue), amount: PRICE })
  await m.block()
  const inputs = m.inputs(4)
  const receipts: Receipt[] = []
  // one job's deposit, dispatched to three workers at once: each sees it covered for itself
  for (const worker of m.workers.slice(0, 3)) {
    const job = jobFor(m, client, did(rogue), inputs)
    const bytes = await transport.request(
      worker.did,
      INFER_PROTOCOL,
      encodeWorkRequest({ job, inputs, dispatch: signDispatch(rogue, job, worker.did), purpose: 'job' }),
    )
    receipts.push(decodeWorkAnswer(bytes, worker.did).receipt)
  }
  m.net.submit(rogue, 'inference.settle', { receipts: receipts.map(receiptValue), latencies: receipts.map(() => 1) })
  await m.block()
  assert.equal(m.net.refused['inference.settle:no-valid-receipts'] ?? 0, 0)
  assert.ok(overdrawnAt(m.net.state, did(rogue)) !== undefined, 'the chain recorded the overdraft')
  // every worker now refuses that gateway, whoever the client
  m.net.submit(client, 'inference.deposit', { gateway: did(rogue), amount: PRICE * 10n })
  await m.block()
  for (const worker of m.workers) {
    const job = jobFor(m, client, did(rogue), inputs)
    await assert.rejects(
      transport
        .request(
          worker.did,
          INFER_PROTOCOL,
          encodeWorkRequest({ job, inputs, dispatch: signDispatch(rogue, job, worker.did), purpose: 'job' }),
        )
        .then((bytes) => decodeWorkAnswer(bytes, worker.did)),
      (err: unknown) => err instanceof InferenceError && /dispatched more than a deposit held/.test(err.message),
    )
  }
})
