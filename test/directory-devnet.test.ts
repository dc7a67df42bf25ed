// The DID directory on a 3-process devnet over real libp2p sockets (every devnet node runs a
// directory): node1 registers itself with the CLI under "restaurant"; a search at node2's API
// finds it (gossip on directory/1); `directory show` at node2 checks the entry against node1's
// DID record in the DHT (consistent); an update with a higher seq reaches every directory, the
// replayed older registration is refused (409) everywhere; a stranger's deletion is 403; the
// CLI's deletion, signed with node1's key, removes the entry from every directory.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from './helpers/cli.ts'
import { createRng, testSeed } from './helpers/random.ts'
import { waitFor } from './helpers/chain-net.ts'
import { exited, firstJsonLine, getJson, spawnDevnet } from './helpers/processes.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { deletionToJson, signDeletion } from '../src/directory/record.ts'
import type { DirectoryEntryView, DirectoryResolution, DirectoryWriteResult } from '../src/api/directory-api.ts'

interface DevnetInfo {
  nodes: Array<{ node: string; did: string; api: string; home: string }>
}

async function send(url: string, method: 'POST' | 'DELETE', body: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, json: await res.json() }
}

async function search(api: string, query: string): Promise<DirectoryEntryView[]> {
  const page = await getJson<{ entries: DirectoryEntryView[] }>(
    `${api}/v1/directory/search?query=${encodeURIComponent(query)}&category=restaurant`,
  )
  return page?.entries ?? []
}

test('directory devnet: register with the CLI at node1, found at node2 by gossip, consistent with the DHT; update, replay 409, delete everywhere', async (t) => {
  const rng = createRng(testSeed())
  const dir = await mkdtemp(join(tmpdir(), 'donghae-directory-devnet-'))
  const base = 14_000 + rng.int(0, 120) * 8
  const { child: devnet, stderr } = spawnDevnet(dir, 3, base)
  const started = Date.now()
  try {
    const info = (await firstJsonLine(devnet)) as DevnetInfo
    const [node0, node1, node2] = info.nodes as [DevnetInfo['nodes'][0], DevnetInfo['nodes'][0], DevnetInfo['nodes'][0]]
    const apis = info.nodes.map((n) => n.api)
    t.diagnostic(`devnet up in ${Date.now() - started} ms`)
    const cli = async (args: string[], home = node1.home): Promise<unknown> => {
      const out = await runCli(['--home', home, 'directory', ...args])
      assert.equal(out.code, 0, `donghae directory ${args.join(' ')}: ${out.stderr}`)
      return JSON.parse(out.stdout)
    }

    await waitFor(
      'every node connected to the two others',
      async () =>
        (await Promise.all(apis.map((api) => getJson<{ peers: unknown[] }>(`${api}/v1/net`)))).every(
          (net) => (net?.peers.length ?? 0) >= 2,
        ),
      20_000,
    )

    // register node1 with the CLI (signed with its key through its operator route)
    const added = (await cli([
      'register',
      '--description',
      'Naengmyeon: cold buckwheat noodles in Gangneung',
      '--category',
      'restaurant',
      '--tag',
      'noodles',
      '--api',
      node1.api,
      '--json',
    ])) as DirectoryWriteResult
    assert.equal(added.change, 'added')
    assert.equal(added.did, node1.did)

    // node2's directory learns of it by gossip
    await waitFor(
      'node2 to find node1 under restaurant',
      async () => (await search(node2.api, 'buckwheat noodles')).some((e) => e.did === node1.did),
      15_000,
    )
    t.diagnostic(`found at node2 by ${Date.now() - started} ms`)
    const first = await getJson<DirectoryEntryView>(`${node1.api}/v1/directory/entries/${node1.did}`)
    assert.ok(first !== undefined)
    assert.equal(first.seq, added.seq)
    assert.equal(first.endpoint, `${node1.api}/v1/webrtc/offer`)

    // node2 checks the entry against node1's DID record in the DHT
    let resolution: DirectoryResolution | undefined
    await waitFor(
      'node2 to resolve node1 consistently',
      async () => {
        resolution = (await cli(['show', node1.did, '--api', node2.api, '--json'], node2.home)) as DirectoryResolution
        return resolution.consistent
      },
      20_000,
    ).catch((err: unknown) => {
      t.diagnostic(`last resolution: ${JSON.stringify(resolution)}`)
      throw err
    })
    t.diagnostic(`resolved consistently by ${Date.now() - started} ms`)
    assert.deepEqual(resolution?.problems, [])
    assert.equal(resolution?.document?.did, node1.did)

    // an update with a higher seq reaches every directory
    const updated = (await cli([
      'register',
      '--description',
      'Naengmyeon and mandu: cold buckwheat noodles, dumplings',
      '--category',
      'restaurant',
      '--tag',
      'noodles',
      '--tag',
      'dumplings',
      '--api',
      node1.api,
      '--json',
    ])) as DirectoryWriteResult
    assert.equal(updated.change, 'updated')
    assert.ok(updated.seq > added.seq)
    await waitFor(
      'every directory to hold the update',
      async () =>
        (await Promise.all(apis.map((api) => getJson<DirectoryEntryView>(`${api}/v1/directory/entries/${node1.did}`))))
          .map((e) => e?.seq)
          .every((seq) => seq === updated.seq),
      15_000,
    )
    assert.ok((await search(node0.api, 'mandu')).some((e) => e.did === node1.did))

    // the older registration, replayed, is refused everywhere
    for (const api of apis) {
      const replay = await send(`${api}/v1/directory/register`, 'POST', first)
      assert.equal(replay.status, 409, `${api}: ${JSON.stringify(replay.json)}`)
    }

    // a deletion signed by another key is refused; the CLI's, signed by node1's key, is applied everywhere
    const stranger = { ...deletionToJson(signDeletion(Ed25519KeyPair.generate(), updated.seq + 1)), did: node1.did }
    assert.equal((await send(`${node2.api}/v1/directory/register`, 'DELETE', stranger)).status, 403)
    const deleted = (await cli(['delete', '--api', node1.api, '--json'])) as DirectoryWriteResult
    assert.equal(deleted.change, 'deleted')
    await waitFor(
      'the entry to be gone from every directory',
      async () => {
        const statuses = await Promise.all(
          apis.map(async (api) => (await fetch(`${api}/v1/directory/entries/${node1.did}`)).status),
        )
        return statuses.every((s) => s === 404)
      },
      15_000,
    )
    for (const api of apis) assert.deepEqual(await search(api, 'noodles'), [], `${api} still lists node1`)
    // and the update cannot bring it back
    const back = await send(`${node0.api}/v1/directory/register`, 'POST', first)
    assert.equal(back.status, 409)
    t.diagnostic(`done in ${Date.now() - started} ms`)
  } catch (err) {
    t.diagnostic(stderr().slice(-2000))
    throw err
  } finally {
    devnet.kill('SIGINT')
    await exited(devnet)
    await rm(dir, { recursive: true, force: true })
  }
})
