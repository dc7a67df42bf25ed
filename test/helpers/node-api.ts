/**
 * A node's HTTP API and its data directory, as the restart, fixture and soak runs read them:
 * heights and blocks, operator transfers, wallet payments and inference jobs (with the operator
 * token), the pending receipts in the chain database's journal and the peer book in the libp2p
 * datastore (both read from the files of a stopped node).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { LevelDatastore } from 'datastore-level'
import { Key } from 'interface-datastore'
import { Store } from '../../src/store/store.ts'
import { bytesCodec, dagCborCodec, utf8Codec } from '../../src/store/codecs.ts'
import type { FormatRecord } from '../../src/store/format.ts'
import { peerIdFromDid } from '../../src/identity/peer-id.ts'

/** One running node as a client sees it. */
export interface NodeRef {
  did: string
  api: string
  home: string
  /** The operator token (`<home>/api-token`). */
  token: string
}

export interface Answer<T = Record<string, unknown>> {
  status: number
  body: T
}

/** One HTTP call; a network error is status 0 (the node is down or restarting). */
export async function call<T = Record<string, unknown>>(
  method: string,
  url: string,
  body?: unknown,
  token?: string,
  signal?: AbortSignal,
): Promise<Answer<T>> {
  const headers: Record<string, string> = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  try {
    const res = await fetch(url, {
      method,
      headers,
      signal: signal ?? AbortSignal.timeout(60_000),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    const text = await res.text()
    return { status: res.status, body: (text === '' ? {} : JSON.parse(text)) as T }
  } catch {
    return { status: 0, body: {} as T }
  }
}

export async function get<T>(url: string, token?: string): Promise<T | undefined> {
  const answer = await call<T>('GET', url, undefined, token)
  return answer.status >= 200 && answer.status < 300 ? answer.body : undefined
}

/** Polls `check` every `intervalMs` (quarter-second: four nodes share two cores) until it holds. */
export async function until(what: string, check: () => boolean | Promise<boolean>, ms = 60_000, intervalMs = 250) {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(intervalMs)
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}

export async function nodeRef(row: { did: string; api: string; home: string }): Promise<NodeRef> {
  const token = (await readFile(join(row.home, 'api-token'), 'utf8')).trim()
  return { did: row.did, api: row.api, home: row.home, token }
}

/** The node's committed height, or -1 when it does not answer. */
export async function heightOf(api: string): Promise<number> {
  return (await get<{ height: number }>(`${api}/v1/status`))?.height ?? -1
}

export async function blockHash(api: string, height: number): Promise<string | undefined> {
  return (await get<{ hash: string }>(`${api}/v1/chain/blocks/${height}`))?.hash
}

export async function balanceOf(api: string, did: string): Promise<bigint | undefined> {
  const account = await get<{ balance: string }>(`${api}/v1/accounts/${did}`)
  return account === undefined ? undefined : BigInt(account.balance)
}

/** The DIDs the node is connected to. */
export async function peersOf(api: string): Promise<string[]> {
  return ((await get<{ peers: Array<{ did?: string }> }>(`${api}/v1/net`))?.peers ?? []).flatMap((p) =>
    p.did === undefined ? [] : [p.did],
  )
}

/** A bank transfer signed by the node's own key (202: in its mempool). */
export function operatorTransfer(node: NodeRef, to: string, amount: bigint | number): Promise<Answer> {
  return call('POST', `${node.api}/v1/operator/transfer`, { to, amount: String(amount) }, node.token)
}

export interface PaymentJson {
  id: string
  direction: 'sent' | 'received'
  amount: string
  memo: string
  status: 'pending' | 'committed' | 'failed'
  delivery: 'queued' | 'stored' | 'acknowledged'
  height?: number
}

export function walletSend(
  node: NodeRef,
  to: string,
  amount: bigint | number,
  memo: string,
): Promise<Answer<PaymentJson>> {
  return call<PaymentJson>(
    'POST',
    `${node.api}/v1/operator/wallet/send`,
    { to, amount: String(amount), memo },
    node.token,
  )
}

export async function walletPayment(node: NodeRef, id: string): Promise<PaymentJson | undefined> {
  return get<PaymentJson>(`${node.api}/v1/operator/wallet/payments/${id}`, node.token)
}

/** A row of the digits data set (an 8×8 "0"): what the fixture and restart runs ask digits-mlp. */
export const DIGIT_ZERO = [
  0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0, 0, 5, 8, 0, 0,
  9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0,
]

export interface InferAnswer {
  status: number
  jobId?: string
  worker?: string
  latencyMs: number
}

/** An operator job on digits-mlp through the node's gateway (the node pays from its deposit with itself). */
export async function operatorInfer(node: NodeRef, pixels: readonly number[] = DIGIT_ZERO): Promise<InferAnswer> {
  const started = performance.now()
  const answer = await call<{ receipt?: { jobId: string; worker: string } }>(
    'POST',
    `${node.api}/v1/infer`,
    { model: 'digits-mlp', inputs: { input: { type: 'float32', dims: [1, 64], data: pixels } } },
    node.token,
  )
  const latencyMs = performance.now() - started
  const receipt = answer.body.receipt
  return {
    status: answer.status,
    latencyMs,
    ...(receipt === undefined ? {} : { jobId: receipt.jobId, worker: receipt.worker }),
  }
}

/** Where the chain settled a job (any node answers), or undefined while it has not. */
export async function settlementOf(
  api: string,
  jobId: string,
): Promise<{ height: number; worker: string } | undefined> {
  return get<{ height: number; worker: string }>(`${api}/v1/jobs/${jobId}/settlement`)
}

/**
 * What a stopped node's chain database holds for the checks: its format record, its head height
 * and the job ids of the receipts its settler journaled and has not seen settled yet.
 */
export async function readChainDb(
  dataDir: string,
): Promise<{ format: FormatRecord | undefined; height: number; pendingReceipts: string[] }> {
  const store = await Store.open(join(dataDir, 'chain'), { createIfMissing: false })
  try {
    const format = await store.bucket('format', utf8Codec, dagCborCodec<FormatRecord>()).get('format')
    const head = await store.bucket('meta', utf8Codec, dagCborCodec<{ height: number }>()).get('head')
    const journal = store.bucket('inference-journal', utf8Codec, bytesCodec)
    const pendingReceipts: string[] = []
    for await (const key of journal.keys()) if (key.startsWith('s/')) pendingReceipts.push(key.slice(2))
    return { format, height: head?.height ?? -1, pendingReceipts }
  } finally {
    await store.close()
  }
}

/** The DIDs among `dids` that a stopped node's peer book (`<data>/p2p`, libp2p's datastore) holds. */
export async function peerBookHas(dataDir: string, dids: readonly string[]): Promise<string[]> {
  const datastore = new LevelDatastore(join(dataDir, 'p2p'), { createIfMissing: false })
  await datastore.open()
  try {
    const found: string[] = []
    for (const did of dids) {
      const key = new Key(`/peers/${peerIdFromDid(did).toCID().toString()}`)
      if (await datastore.has(key)) found.push(did)
    }
    return found
  } finally {
    await datastore.close()
  }
}
