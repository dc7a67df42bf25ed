// The chain commands of the real CLI (child processes) against the HTTP API served from this
// process over a MemoryChain whose genesis funds the DID that `donghae init` created.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { createApiServer } from '../src/api/server.ts'
import { actor, makeGenesis } from './helpers/chain.ts'
import { runCli } from './helpers/cli.ts'
import { encodeTx, signTx } from '../src/chain/tx.ts'
import { loadKeystore } from '../src/identity/keystore.ts'
import { MemoryChain } from './helpers/memory-chain.ts'
import { FAST_PARAMS, testNet } from './helpers/chain-net.ts'
import type { DonghaeNode } from '../src/node/index.ts'

const PASSWORD = 'correct horse battery'
const FUNDS = 1_000_000n
const validator = actor()
const bob = actor()

let dir: string
let home: string
let did: string
let chain: MemoryChain
let app: FastifyInstance
let url: string

function oneLineError(stderr: string): string {
  const lines = stderr.trim().split('\n')
  assert.equal(lines.length, 1, `expected one error line, got: ${stderr}`)
  assert.match(lines[0] ?? '', /^donghae: /)
  return lines[0] ?? ''
}

/** Runs the CLI with this test's home, node and password. */
function cli(args: string[]): ReturnType<typeof runCli> {
  return runCli(['--home', home, ...args], { DONGHAE_PASSWORD: PASSWORD, DONGHAE_NODE: url })
}

/** A local port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'donghae-chain-cli-'))
  home = join(dir, 'home')
  const init = await runCli(['--home', home, 'init', '--json'], { DONGHAE_PASSWORD: PASSWORD })
  assert.equal(init.code, 0, init.stderr)
  did = (JSON.parse(init.stdout) as { did: string }).did
  const genesis = makeGenesis([validator], [])
  genesis.accounts.push({ did, balance: FUNDS })
  chain = new MemoryChain({ genesis, validators: [validator] })
  app = createApiServer({ chain })
  await app.listen({ host: '127.0.0.1', port: 0 })
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
})

after(async () => {
  await app?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

test('chain status and account read the node (amounts as strings in --json)', async () => {
  const status = await cli(['chain', 'status', '--json'])
  assert.equal(status.code, 0, status.stderr)
  const s = JSON.parse(status.stdout) as { chainId: string; validators: Array<{ power: string }> }
  assert.equal(s.chainId, 'donghae-test')
  assert.equal(s.validators[0]?.power, '10000')
  const text = await cli(['chain', 'status'])
  assert.match(text.stdout, /^chain\s+donghae-test$/m)

  const account = await cli(['account', did, '--json'])
  assert.equal(account.code, 0, account.stderr)
  assert.deepEqual(JSON.parse(account.stdout), { did, balance: FUNDS.toString(), nonce: '0', stake: null })
})

test('tx transfer --json returns a hash; after the block, account shows the new balances', async () => {
  const sent = await cli(['tx', 'transfer', '--to', bob.did, '--amount', '1500', '--memo', 'rent', '--json'])
  assert.equal(sent.code, 0, sent.stderr)
  const result = JSON.parse(sent.stdout) as { hash: string; sender: string; nonce: string; fee: string; kind: string }
  assert.match(result.hash, /^[0-9a-f]{64}$/)
  assert.deepEqual({ ...result, hash: '' }, { hash: '', kind: 'bank.transfer', sender: did, nonce: '0', fee: '1' })
  chain.commitPending()
  const mine = await cli(['account', did, '--json'])
  assert.deepEqual(JSON.parse(mine.stdout), { did, balance: (FUNDS - 1500n - 1n).toString(), nonce: '1', stake: null })
  const theirs = await runCli(['--node', url, 'account', bob.did])
  assert.equal(theirs.code, 0, theirs.stderr)
  assert.match(theirs.stdout, /^balance\s+1500$/m)
  const shown = await cli(['tx', 'show', result.hash, '--json'])
  assert.deepEqual(JSON.parse(shown.stdout), { hash: result.hash, height: chain.height, ok: true })
})

test('--wait polls until the transaction is committed and prints its height; stake bond shows up', async () => {
  const running = cli(['stake', 'bond', '--amount', '2000', '--fee', '3', '--wait', '--json'])
  while (chain.mempool.size === 0) await new Promise((resolve) => setTimeout(resolve, 20))
  const block = chain.commitPending()
  const done = await running
  assert.equal(done.code, 0, done.stderr)
  const result = JSON.parse(done.stdout) as { kind: string; height: number; fee: string }
  assert.deepEqual([result.kind, result.height, result.fee], ['staking.bond', block.header.height, '3'])
  assert.match(done.stderr, /waiting for [0-9a-f]{64} to be committed/)
  const account = JSON.parse((await cli(['account', did, '--json'])).stdout) as { stake: { bonded: string } | null }
  assert.equal(account.stake?.bonded, '2000')
})

test('another client of the key holds the next nonce (the node’s own transactions): the CLI signs again with the next one', async () => {
  chain.commitPending()
  const key = await loadKeystore(join(home, 'keystore.json'), PASSWORD)
  const next = BigInt((JSON.parse((await cli(['account', did, '--json'])).stdout) as { nonce: string }).nonce)
  // pending, not committed: the account still says `next`
  await chain.submitTx(
    encodeTx(
      signTx(key, {
        chainId: 'donghae-test',
        nonce: next,
        fee: 1n,
        kind: 'bank.transfer',
        body: { to: bob.did, amount: 7n },
      }),
    ),
  )
  const sent = await cli(['tx', 'transfer', '--to', bob.did, '--amount', '9', '--json'])
  assert.equal(sent.code, 0, sent.stderr)
  assert.equal((JSON.parse(sent.stdout) as { nonce: string }).nonce, (next + 1n).toString())
  // with --nonce the user chose: the refusal is reported, nothing is signed again
  const fixed = await cli(['tx', 'transfer', '--to', bob.did, '--amount', '9', '--nonce', next.toString()])
  assert.equal(fixed.code, 1)
  assert.match(oneLineError(fixed.stderr), /nonce-in-use/)
  chain.commitPending()
  const after = JSON.parse((await cli(['account', did, '--json'])).stdout) as { nonce: string }
  assert.equal(after.nonce, (next + 2n).toString(), 'both transfers committed')
})

test('bad amounts, bad DIDs and rejected transactions exit 1 with one line', async () => {
  for (const amount of ['12.5', '0', '99999999999999999999999']) {
    const result = await cli(['tx', 'transfer', '--to', bob.did, '--amount', amount])
    assert.equal(result.code, 1, amount)
    assert.match(oneLineError(result.stderr), /--amount must be/)
    assert.equal(result.stdout, '')
  }
  const badTo = await cli(['tx', 'transfer', '--to', 'did:key:nope', '--amount', '5'])
  assert.equal(badTo.code, 1)
  assert.match(oneLineError(badTo.stderr), /invalidDid/)
  const lowFee = await cli(['stake', 'unbond', '--amount', '5', '--fee', '0'])
  assert.equal(lowFee.code, 1)
  assert.match(oneLineError(lowFee.stderr), /rejected the transaction \(fee-too-low\)/)
  const wrongPassword = await runCli(['--home', home, 'stake', 'withdraw'], {
    DONGHAE_PASSWORD: 'not the password',
    DONGHAE_NODE: url,
  })
  assert.equal(wrongPassword.code, 1)
  oneLineError(wrongPassword.stderr)
  assert.equal(chain.mempool.size, 0)
})

test('an unreachable node exits 1 with one line naming the URL', async () => {
  const nowhere = `http://127.0.0.1:${await closedPort()}`
  for (const args of [
    ['chain', 'status'],
    ['account', did],
    ['tx', 'transfer', '--to', bob.did, '--amount', '5'],
  ]) {
    const result = await runCli(['--home', home, '--node', nowhere, ...args], { DONGHAE_PASSWORD: PASSWORD })
    assert.equal(result.code, 1, args.join(' '))
    const line = oneLineError(result.stderr)
    assert.ok(line.includes(nowhere), line)
  }
  const badUrl = await cli(['--node', 'nope', 'chain', 'status'])
  assert.equal(badUrl.code, 1)
  assert.match(oneLineError(badUrl.stderr), /not a URL/)
})

test('help of the chain commands has examples', async () => {
  for (const args of [
    ['tx', 'transfer', '--help'],
    ['stake', 'bond', '--help'],
    ['chain', 'status', '--help'],
    ['account', '--help'],
  ]) {
    const result = await runCli(args)
    assert.equal(result.code, 0, args.join(' '))
    assert.match(result.stdout, /Examples:/)
  }
})

test('against a real single-validator node: tx transfer --wait returns once consensus commits it', async () => {
  const v = actor()
  const genesis = makeGenesis([v], [], FAST_PARAMS)
  genesis.accounts.push({ did, balance: FUNDS })
  const net = await testNet([v], genesis)
  const node = net.nodes.get(v.did) as DonghaeNode
  const server = createApiServer({ chain: node.chainApi })
  await server.listen({ host: '127.0.0.1', port: 0 })
  const nodeUrl = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`
  try {
    const sent = await runCli(
      ['--home', home, '--node', nodeUrl, 'tx', 'transfer', '--to', bob.did, '--amount', '900', '--wait', '--json'],
      {
        DONGHAE_PASSWORD: PASSWORD,
      },
    )
    assert.equal(sent.code, 0, sent.stderr)
    const result = JSON.parse(sent.stdout) as { hash: string; height: number }
    assert.ok(result.height >= 1)
    const account = await runCli(['--node', nodeUrl, 'account', did, '--json'])
    assert.deepEqual(JSON.parse(account.stdout), { did, balance: (FUNDS - 901n).toString(), nonce: '1', stake: null })
  } finally {
    await server.close()
    await net.close()
  }
})
