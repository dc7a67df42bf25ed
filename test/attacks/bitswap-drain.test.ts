// Attack: a connected peer asks a node's content store for the same model file again and again
// (each time from an empty store of its own), to make the node upload for ever. Bitswap answers
// every want of every peer, so the store charges each wanted block to the peer's serving budget
// (net/content-store.ts `limitServing`): once spent, the peer's wants are dropped and its fetch
// stalls, while another peer is still served at full speed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DonghaeHost } from '../../src/net/host.ts'
import { bytesOf, loopbackHost } from '../helpers/content.ts'
import { ContentStore, ContentUnavailableError, type ContentStoreOptions } from '../../src/net/content-store.ts'

const MiB = 1024 * 1024

test('a peer that re-fetches a file for ever is cut off at its serving budget; others are still served', async () => {
  const root = await mkdtemp(join(tmpdir(), 'donghae-drain-'))
  const hosts: DonghaeHost[] = []
  const stores: ContentStore[] = []
  const open = async (name: string, options: Partial<ContentStoreOptions> = {}): Promise<ContentStore> => {
    const h = await loopbackHost()
    hosts.push(h)
    const store = await ContentStore.open({ libp2p: h, dir: join(root, name), ...options })
    stores.push(store)
    return store
  }
  try {
    // the victim lets each peer have 4 MiB a minute; the file is 1 MiB (4 blocks)
    const victim = await open('victim', { serveBudget: { bytes: 4 * MiB, perMs: 60_000 } })
    const { cid } = await victim.addFile(bytesOf(MiB, 'model'))
    const victimAddr = hosts[0]!.getMultiaddrs()[0]!
    const attackerHost = await loopbackHost()
    hosts.push(attackerHost)
    await attackerHost.dial(victimAddr)
    let served = 0
    let refusedAt: number | undefined
    for (let round = 0; round < 12 && refusedAt === undefined; round++) {
      // a fresh empty store each round, so every block is wanted again
      const store = await ContentStore.open({
        libp2p: attackerHost,
        dir: join(root, `attacker-${round}`),
        fetch: { stallMs: 2_000, blockTimeoutMs: 1_000, retryMs: 200 },
      })
      try {
        await store.fetch(cid)
        served++
      } catch (err) {
        assert.ok(err instanceof ContentUnavailableError, `a stalled fetch, not ${String(err)}`)
        refusedAt = round
      } finally {
        await store.close()
      }
    }
    assert.ok(refusedAt !== undefined, `the attacker was still served after ${served} copies`)
    assert.ok(served >= 2 && served <= 6, `about the budget's worth was served (${served} copies of 1 MiB for 4 MiB)`)

    // an honest peer is not affected by the attacker's spent budget
    const honest = await open('honest', { fetch: { stallMs: 5_000 } })
    await hosts.at(-1)!.dial(victimAddr)
    const result = await honest.fetch(cid)
    assert.equal(result.fetchedBlocks, result.blocks, 'the honest peer got the whole file')
  } finally {
    for (const s of stores) await s.close().catch(() => {})
    for (const h of hosts) await Promise.resolve(h.stop()).catch(() => {})
    await rm(root, { recursive: true, force: true })
  }
})
