// The FL Alliance demonstration (issue 15, part 3) on a 4-validator devnet over real libp2p
// sockets, with twelve `donghae fl join` participant processes — each its own home, keystore and
// non-IID shard of the digits federation (Dirichlet 0.5), each talking HTTP to one of the nodes
// (no chain of its own); their sealed updates and the aggregates go through the nodes' content
// stores and bitswap. Tasks run one after another on the same chain, N rounds each (state N:
// DONGHAE_FL_ROUNDS, default 12), from the task's consensus model (the MLP trained on 150 public
// examples):
//
//   fedavg-clean       FedAvg, no attacker: the global model within 2 points of centralised
//                      training on the same data (the consensus model fine-tuned on the union of
//                      the shards, DIGITS_RECIPE)
//   multi-krum-3       multi-Krum f = 3, three sign-flippers (×4): accuracy within 2 points of
//                      clean FedAvg, every attacker that proposed excluded and its bond slashed,
//                      no honest participant slashed
//
// Into the market (part 4): each task is created with a price, so after its final round its global
// model — the ONNX export its voters agreed on — is in the node's model registry (GET /v1/models)
// with lineage source 'fl' (the task view's `model.lineage`, read from the registry record); once
// the devnet's workers serve the last one, one inference job runs on it through POST /v1/infer
// and answers what the global model computes.
//
// DONGHAE_FL_VARIANTS picks others (comma-separated): multi-krum-clean, multi-krum-2, fedavg-2,
// fedavg-3, median-3, trimmed-mean-3 (bench/fl-round.bench.ts runs the whole matrix). Figures are
// printed as diagnostics: accuracy per round, slashes, and where a round's time goes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BIN } from '../helpers/cli.ts'
import { createRng, testSeed } from '../helpers/random.ts'
import { waitFor } from '../helpers/chain-net.ts'
import { exited, firstJsonLine, getJson } from '../helpers/processes.ts'
import { readDigitsDataset, DIGITS_RECIPE } from '../../src/inference/demo-models.ts'
import { mlpTrainer, type Dataset } from '../../src/inference/trainer.ts'
import { createTensor, tensorFromJson, tensorToB64Json } from '../../src/inference/tensor.ts'
import { consensusModel, digitsFederation, mlpTemplate } from '../../src/fl/round.ts'
import { decodeModel } from '../../src/fl/blob.ts'
import { unflattenMlp } from '../../src/fl/weights.ts'
import type { FlTaskDetailJson } from '../../src/api/fl-api.ts'
import type { RoundReport } from '../../src/fl/service.ts'

interface DevnetInfo {
  password: string
  nodes: Array<{ node: string; did: string; api: string; home: string }>
}

interface Variant {
  name: string
  rule: string
  f: number
  attackers: number
}

const VARIANTS: Record<string, Variant> = {
  'fedavg-clean': { name: 'fedavg-clean', rule: 'fedavg', f: 0, attackers: 0 },
  'fedavg-2': { name: 'fedavg-2', rule: 'fedavg', f: 0, attackers: 2 },
  'fedavg-3': { name: 'fedavg-3', rule: 'fedavg', f: 0, attackers: 3 },
  'multi-krum-clean': { name: 'multi-krum-clean', rule: 'multi-krum', f: 3, attackers: 0 },
  'multi-krum-2': { name: 'multi-krum-2', rule: 'multi-krum', f: 3, attackers: 2 },
  'multi-krum-3': { name: 'multi-krum-3', rule: 'multi-krum', f: 3, attackers: 3 },
  'median-3': { name: 'median-3', rule: 'median', f: 3, attackers: 3 },
  'trimmed-mean-3': { name: 'trimmed-mean-3', rule: 'trimmed-mean', f: 3, attackers: 3 },
}

const CLIENTS = 12
const ROUNDS = Number(process.env.DONGHAE_FL_ROUNDS ?? 12)
const UPLOAD_BLOCKS = 8
const VOTE_BLOCKS = 8
const BOND = 1_000n
/** Fee per call of each task's global model in the inference market. */
const PRICE = 2n

/** A CLI child with its stdout lines and the tail of its stderr kept. */
function cli(args: string[]): { child: ChildProcess; lines: string[]; stderr(): string } {
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DONGHAE_PASSWORD: undefined },
  })
  const lines: string[] = []
  let buffer = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (c: string) => {
    buffer += c
    const parts = buffer.split('\n')
    buffer = parts.pop() ?? ''
    lines.push(...parts.filter((l) => l.length > 0))
  })
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-8_000)))
  return { child, lines, stderr: () => stderr }
}

async function run(args: string[]): Promise<string> {
  const c = cli(args)
  const code = await new Promise<number | null>((resolve) => c.child.once('exit', resolve))
  assert.equal(code, 0, `donghae ${args.join(' ')}: ${c.stderr()}`)
  return c.lines.join('\n')
}

async function blob(api: string, cid: string): Promise<Uint8Array> {
  const res = await fetch(`${api}/v1/fl/blobs/${cid}`)
  assert.equal(res.status, 200, `GET blob ${cid}`)
  return new Uint8Array(await res.arrayBuffer())
}

const pct = (x: number): string => `${(x * 100).toFixed(2)}%`

interface TaskOutcome {
  variant: Variant
  final: number
  perRound: string[]
  detail: FlTaskDetailJson
  attackers: string[]
  reports: Map<string, RoundReport[]>
  seconds: number
}

test('FL Alliance on a devnet: twelve participant processes, clean FedAvg near centralised, multi-Krum against three sign-flippers', async (t) => {
  const rng = createRng(testSeed())
  t.diagnostic(`seed ${rng.seed}`)
  const variants = (process.env.DONGHAE_FL_VARIANTS ?? 'fedavg-clean,multi-krum-3').split(',').map((name) => {
    const v = VARIANTS[name]
    assert.ok(v !== undefined, `unknown variant ${name}; known: ${Object.keys(VARIANTS).join(', ')}`)
    return v
  })
  const dir = await mkdtemp(join(tmpdir(), 'donghae-fl-devnet-'))
  const passwordFile = join(dir, 'password')
  await writeFile(passwordFile, 'fl devnet participants\n', { mode: 0o600 })

  // the data every process splits alike; the test keeps the held-out part to measure
  const federation = digitsFederation(await readDigitsDataset(), { clients: CLIENTS })
  const start = await consensusModel(federation.public)
  const central = await mlpTrainer.train(federation.private, { ...DIGITS_RECIPE.mlp, initial: start })
  const centralAccuracy = mlpTrainer.evaluate(central, federation.test).accuracy
  t.diagnostic(
    `consensus model ${pct(mlpTrainer.evaluate(start, federation.test).accuracy)}; centralised (fine-tuned on the union of the shards) ${pct(centralAccuracy)}`,
  )

  // twelve participants and a task creator, each with a home of its own
  const homes = [...Array.from({ length: CLIENTS }, (_, i) => join(dir, `client${i}`)), join(dir, 'creator')]
  const dids: string[] = []
  for (let i = 0; i < homes.length; i += 2)
    dids.push(
      ...(await Promise.all(
        homes.slice(i, i + 2).map(
          async (home) =>
            (
              JSON.parse(await run(['--home', home, 'init', '--password-file', passwordFile, '--json'])) as {
                did: string
              }
            ).did,
        ),
      )),
    )
  const creator = homes[CLIENTS] as string

  const base = 17_000 + rng.int(0, 150) * 8
  const devnet = cli([
    '--home',
    join(dir, 'devnet'),
    'devnet',
    '--nodes',
    '4',
    '--base-port',
    String(base),
    '--json',
    ...dids.flatMap((did) => ['--fund', `${did}:10000000`]),
  ])
  const joins: ChildProcess[] = []
  try {
    const info = (await firstJsonLine(devnet.child)) as DevnetInfo
    const apis = info.nodes.map((n) => n.api)
    const api0 = apis[0] as string
    await waitFor(
      'every node connected to another',
      async () =>
        (await Promise.all(apis.map((a) => getJson<{ peers: unknown[] }>(`${a}/v1/net`)))).every(
          (net) => (net?.peers.length ?? 0) >= 1,
        ),
      30_000,
    )

    const outcomes: TaskOutcome[] = []
    const registered: Array<{ cid: string; global: { cid: string; digest: string } }> = []
    for (const variant of variants) {
      const began = Date.now()
      const created = JSON.parse(
        await run([
          '--home',
          creator,
          '--node',
          api0,
          'fl',
          'create',
          '--rule',
          variant.rule,
          '--f',
          String(variant.f),
          '--rounds',
          String(ROUNDS),
          '--upload-blocks',
          String(UPLOAD_BLOCKS),
          '--vote-blocks',
          String(VOTE_BLOCKS),
          '--bond',
          String(BOND),
          '--price',
          String(PRICE),
          '--password-file',
          passwordFile,
          '--json',
        ]),
      ) as { task: number }
      const id = created.task
      // the first `attackers` shards sign-flip: shard 0 (59 examples) is the hardest to tell apart
      const attackerIndexes = new Set(Array.from({ length: variant.attackers }, (_, i) => i))
      const reports = new Map<string, RoundReport[]>()
      const children = homes.slice(0, CLIENTS).map((home, i) => {
        const c = cli([
          '--home',
          home,
          '--node',
          apis[i % apis.length] as string,
          'fl',
          'join',
          '--task',
          String(id),
          '--shard',
          `${i}/${CLIENTS}`,
          '--behaviour',
          attackerIndexes.has(i) ? 'sign-flip' : 'honest',
          '--password-file',
          passwordFile,
          '--json',
        ])
        joins.push(c.child)
        return { ...c, did: dids[i] as string }
      })
      const codes = await Promise.all(
        children.map((c) => new Promise<number | null>((resolve) => c.child.once('exit', (code) => resolve(code)))),
      )
      for (const [i, c] of children.entries()) {
        assert.equal(codes[i], 0, `participant ${i}: ${c.stderr()}`)
        reports.set(
          c.did,
          c.lines
            .map((l) => JSON.parse(l) as Record<string, unknown>)
            .filter((l) => typeof l.round === 'number') as unknown as RoundReport[],
        )
      }
      const detail = (await getJson<FlTaskDetailJson>(`${api0}/v1/fl/tasks/${id}`)) as FlTaskDetailJson
      assert.equal(detail.task.status, 'finished')
      // into the market: the global model's ONNX export is registered, with its lineage
      const market = detail.task.model
      assert.equal(market?.registered, true, `task ${id} registered its model: ${JSON.stringify(market)}`)
      assert.equal(market?.cid, detail.task.onnx?.cid)
      assert.equal(market?.lineage?.source, 'fl')
      assert.equal(market?.lineage?.task, String(id))
      const listed = (await getJson<{ data: Array<{ id: string; cid: string; version: string }> }>(`${api0}/v1/models`))
        ?.data
      assert.ok(
        listed?.some((m) => m.cid === market?.cid && m.version === `fl-${id}`),
        `GET /v1/models lists the FL model ${market?.cid}`,
      )
      registered.push({ cid: market!.cid, global: detail.task.global })
      const like = mlpTemplate(detail.task.widths, detail.task.inputDivisor)
      const accuracyOf = async (ref: { cid: string; digest: string }, data: Dataset): Promise<number> => {
        const weights = decodeModel(await blob(api0, ref.cid), {
          length: 64 * 32 + 32 + 32 * 10 + 10,
          digest: ref.digest,
        })
        return mlpTrainer.evaluate(unflattenMlp(weights, like), data).accuracy
      }
      const perRound: string[] = []
      for (const r of detail.rounds) {
        // the aggregate the voters computed (the majority's, else the one most named): what FedAvg makes of the round
        const named = r.aggregate ?? r.votes.find((v) => v.aggregate !== undefined)?.aggregate
        const acc = named === undefined ? undefined : await accuracyOf(named, federation.test)
        perRound.push(`${acc === undefined ? '-' : (acc * 100).toFixed(1)}${r.status === 'passed' ? '' : '✗'}`)
      }
      for (const r of detail.rounds.filter((x) => x.status === 'failed'))
        t.diagnostic(
          `  round ${r.round} failed (votes until ${r.voteEnd}): ` +
            r.voters
              .map((did) => {
                const vote = r.votes.find((v) => v.did === did)
                const report = reports.get(did)?.find((x) => x.round === r.round)
                return `${did.slice(-6)} ${vote === undefined ? 'no vote' : `${vote.approve ? 'approve' : 'reject'} ${vote.aggregate?.digest.slice(0, 8) ?? '-'} at ${vote.height} excl ${vote.excluded.length}`} [${JSON.stringify(report ?? {})}]`
              })
              .join('; ') +
            ` updates ${r.updates.length} at ${r.updates.map((u) => u.height).join(',')}`,
        )
      const final = await accuracyOf(detail.task.global, federation.test)
      const outcome: TaskOutcome = {
        variant,
        final,
        perRound,
        detail,
        attackers: [...attackerIndexes].map((i) => dids[i] as string),
        reports,
        seconds: (Date.now() - began) / 1000,
      }
      outcomes.push(outcome)
      const slashed = detail.participants.filter((p) => p.slashed !== '0')
      t.diagnostic(
        `task ${id} ${variant.name}: ${ROUNDS} rounds in ${outcome.seconds.toFixed(0)} s; global model ${pct(final)}; ` +
          `aggregate per round (✗ = round failed) ${perRound.join(' ')}; ` +
          `slashed ${slashed.map((p) => `${outcome.attackers.includes(p.did) ? 'attacker' : 'HONEST'} ${p.slashed}`).join(', ') || 'nobody'}`,
      )
      // where a round's time goes, from the participants' own timings (median over rounds and roles)
      const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? 0
      const all = [...reports.values()].flat()
      const phases = (role: string): string =>
        Object.entries(
          all
            .filter((r) => r.role === role)
            .reduce<Record<string, number[]>>((acc, r) => {
              for (const [k, v] of Object.entries(r.ms)) (acc[k] ??= []).push(v)
              return acc
            }, {}),
        )
          .map(([k, v]) => `${k} ${median(v)}`)
          .join(', ')
      const blocks = detail.rounds.map((r) => r.voteEnd - r.start)
      const phaseMedians = (role: string): Record<string, number> =>
        Object.fromEntries(
          Object.entries(
            all
              .filter((r) => r.role === role)
              .reduce<Record<string, number[]>>((acc, r) => {
                for (const [k, v] of Object.entries(r.ms)) (acc[k] ??= []).push(v)
                return acc
              }, {}),
          ).map(([k, v]) => [k, median(v)]),
        )
      // one machine-readable line per task (bench/fl-round.bench.ts reads it)
      t.diagnostic(
        `FLJSON ${JSON.stringify({
          variant: variant.name,
          rule: variant.rule,
          attackers: variant.attackers,
          rounds: ROUNDS,
          seconds: outcome.seconds,
          blocksPerRound: median(blocks),
          final,
          central: centralAccuracy,
          perRound,
          failedRounds: detail.rounds.filter((r) => r.status === 'failed').length,
          slashedAttackers: detail.participants.filter((p) => outcome.attackers.includes(p.did) && p.slashed !== '0')
            .length,
          slashedHonest: detail.participants.filter((p) => !outcome.attackers.includes(p.did) && p.slashed !== '0')
            .length,
          attackerSlashed: detail.participants.filter((p) => outcome.attackers.includes(p.did)).map((p) => p.slashed),
          proposerMs: phaseMedians('proposer'),
          voterMs: phaseMedians('voter'),
        })}`,
      )
      t.diagnostic(
        `  a round is ${median(blocks)} blocks (${UPLOAD_BLOCKS} upload + ${VOTE_BLOCKS} vote), ${(outcome.seconds / ROUNDS).toFixed(1)} s; ` +
          `proposer ms: ${phases('proposer')}; voter ms: ${phases('voter')}`,
      )
    }

    // one inference job on the last registered FL model, once a worker serves it
    const last = registered[registered.length - 1]
    if (last !== undefined) {
      const node = info.nodes[1] ?? info.nodes[0]!
      await waitFor(
        `a worker serving the FL model ${last.cid}`,
        async () =>
          ((await getJson<{ data: Array<{ cid: string; workers: number }> }>(`${node.api}/v1/models`))?.data.find(
            (m) => m.cid === last.cid,
          )?.workers ?? 0) >= 1,
        60_000,
      )
      const token = (await readFile(join(node.home, 'api-token'), 'utf8')).trim()
      const row = federation.test.features.slice(0, 64)
      const res = await fetch(`${node.api}/v1/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({
          model: last.cid,
          inputs: { input: tensorToB64Json(createTensor('float32', [1, 64], row)) },
          output_encoding: 'b64',
        }),
      })
      const body = (await res.json()) as { outputs: Record<string, unknown>; receipt?: { worker: string } }
      assert.equal(res.status, 200, JSON.stringify(body).slice(0, 400))
      const served = tensorFromJson(body.outputs.probabilities, 'probabilities').data as Float32Array
      const like = mlpTemplate([64, 32, 10], 16)
      const weights = decodeModel(await blob(api0, last.global.cid), {
        length: 64 * 32 + 32 + 32 * 10 + 10,
        digest: last.global.digest,
      })
      const expected = mlpTrainer.predict(unflattenMlp(weights, like), row)
      served.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-4, `output ${i}: ${v} vs ${expected[i]}`))
      t.diagnostic(
        `inference job on FL model ${last.cid} via ${node.api}: worker …${body.receipt?.worker.slice(-8) ?? '?'}, top class ${served.indexOf(Math.max(...served))}`,
      )
    }

    // ---- the claims ----
    const clean = outcomes.find((o) => o.variant.name === 'fedavg-clean')
    if (clean !== undefined) {
      assert.ok(
        clean.final >= centralAccuracy - 0.02,
        `clean FedAvg ${pct(clean.final)} is within 2 points of centralised ${pct(centralAccuracy)}`,
      )
      assert.ok(
        clean.detail.participants.every((p) => p.slashed === '0'),
        'nobody is slashed in a clean run',
      )
    }
    for (const o of outcomes.filter((x) => x.variant.attackers > 0 && x.variant.rule !== 'fedavg')) {
      const cleanSame = outcomes.find((x) => x.variant.rule === o.variant.rule && x.variant.attackers === 0)
      const reference = clean ?? cleanSame
      if (reference !== undefined && o.variant.rule === 'multi-krum')
        assert.ok(
          o.final >= reference.final - 0.02,
          `${o.variant.name} ${pct(o.final)} is within 2 points of ${reference.variant.name} ${pct(reference.final)}`,
        )
      const proposedBy = (did: string): number => o.detail.rounds.filter((r) => r.proposers.includes(did)).length
      for (const did of o.attackers) {
        const p = o.detail.participants.find((x) => x.did === did)
        assert.ok(p !== undefined)
        if (proposedBy(did) >= 2)
          assert.ok(BigInt(p.slashed) > 0n, `attacker ${did} (proposed ${proposedBy(did)}) was slashed`)
        assert.equal(BigInt(p.returned) + BigInt(p.slashed), BOND, 'its bond: returned + slashed')
      }
      if (o.variant.rule === 'multi-krum')
        for (const p of o.detail.participants.filter((x) => !o.attackers.includes(x.did)))
          assert.equal(p.slashed, '0', `honest ${p.did} was not slashed`)
    }
    for (const o of outcomes.filter((x) => x.variant.rule === 'fedavg' && x.variant.attackers > 0))
      t.diagnostic(
        `${o.variant.name}: global ${pct(o.final)} (${clean === undefined ? '' : `clean ${pct(clean.final)}, `}a fall of ${clean === undefined ? '?' : ((clean.final - o.final) * 100).toFixed(1)} points)`,
      )
  } finally {
    for (const child of joins) if (child.exitCode === null) child.kill('SIGTERM')
    devnet.child.kill('SIGTERM')
    await exited(devnet.child)
    await rm(dir, { recursive: true, force: true })
  }
})
