// The dashboard's live view of one node: the event stream (GET /v1/events through the typed
// client) folded into state, plus a few polled reads (status, network, node info). Components
// read it with useLive(); everything updates as events arrive.
import { useEffect, useState } from 'preact/hooks'
import {
  ApiError,
  DonghaeClient,
  type EventMap,
  type FetchJson,
  type NetJson,
  type NodeEvent,
  type NodeInfoJson,
  type StatusJson,
} from '../../src/api/client.ts'
import { loadToken, saveToken } from './token.ts'

/** 'idle': no block for a while, and the node says its chain is waiting for work (no empty blocks). */
export type Health = 'connecting' | 'live' | 'idle' | 'stale' | 'offline'

/** The badge tone of each health. */
export const HEALTH_TONE = { live: 'ok', idle: 'ok', stale: 'warn', offline: 'bad', connecting: 'neutral' } as const

/** Per-second job counts and mean latency over the last JOB_WINDOW_S seconds. */
export interface JobSeries {
  t: number[]
  perSecond: number[]
  latencyMs: Array<number | null>
}

export interface LiveState {
  health: Health
  info: NodeInfoJson | undefined
  status: StatusJson | undefined
  net: NetJson | undefined
  nat: EventMap['nat'] | undefined
  height: number
  lastBlockAt: number | undefined
  /** Newest first. */
  blocks: Array<EventMap['block']>
  finality: { heights: number[]; seconds: number[] }
  jobs: Array<EventMap['job']>
  jobSeries: JobSeries
  slashes: Array<EventMap['slash']>
  peerLog: Array<EventMap['peer'] & { at: number }>
  /** Model fetches the `model.fetch` events told of, one per model, newest first. */
  fetches: FetchJson[]
  /** Every event, newest first (a fetch's progress only when it starts and ends). */
  feed: Array<NodeEvent & { at: number }>
  token: string | undefined
  /** Whether the node accepted the token (GET /v1/operator). */
  operator: 'none' | 'checking' | 'ok' | 'rejected'
  error: string | undefined
}

const KEEP_BLOCKS = 30
const KEEP_FINALITY = 120
const KEEP_FEED = 40
const KEEP_FETCHES = 20
const JOB_WINDOW_S = 120
/** No block for this long: the node is 'stale', or 'idle' when its consensus waits for work. */
const STALE_MS = 30_000
const POLL_MS = 5_000
const REFRESH_ON_BLOCK_MS = 2_000

/** The /v1/net answer's NAT state in the shape of a `nat` event. */
function natFromView(view: NetJson['nat']): EventMap['nat'] {
  return 'reason' in view
    ? { method: view.method, reason: view.reason, ...(view.relay === undefined ? {} : { relay: view.relay }) }
    : { method: view.method, externalAddress: view.externalAddress }
}

const emptySeries = (): JobSeries => ({ t: [], perSecond: [], latencyMs: [] })

export class NodeLive {
  readonly client: DonghaeClient
  #state: LiveState
  readonly #listeners = new Set<() => void>()
  readonly #abort = new AbortController()
  readonly #jobBuckets = new Map<number, { count: number; latency: number }>()
  readonly #timers: Array<ReturnType<typeof setInterval>> = []
  /** Events up to this seq are history the node replayed, not news. */
  #replayedUpTo = 0
  #refreshedAt = 0
  /** When a status last arrived. */
  #statusAt = 0

  constructor(baseUrl: string) {
    const token = loadToken()
    this.client = new DonghaeClient(baseUrl, { token, timeoutMs: 60_000 })
    this.#state = {
      health: 'connecting',
      info: undefined,
      status: undefined,
      net: undefined,
      nat: undefined,
      height: 0,
      lastBlockAt: undefined,
      blocks: [],
      finality: { heights: [], seconds: [] },
      jobs: [],
      jobSeries: emptySeries(),
      slashes: [],
      peerLog: [],
      fetches: [],
      feed: [],
      token,
      operator: token === undefined ? 'none' : 'checking',
      error: undefined,
    }
  }

  get state(): LiveState {
    return this.#state
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => void this.#listeners.delete(listener)
  }

  #set(patch: Partial<LiveState>): void {
    this.#state = { ...this.#state, ...patch }
    for (const listener of this.#listeners) listener()
  }

  start(): void {
    void this.#stream()
    void this.refresh()
    void this.#checkToken()
    this.#timers.push(setInterval(() => void this.refresh(), POLL_MS))
    this.#timers.push(setInterval(() => this.#tick(), 1000))
  }

  stop(): void {
    this.#abort.abort()
    for (const timer of this.#timers) clearInterval(timer)
  }

  setToken(token: string | undefined): void {
    saveToken(token)
    this.client.setToken(token)
    this.#set({ token, operator: token === undefined ? 'none' : 'checking' })
    void this.#checkToken()
  }

  async #checkToken(): Promise<void> {
    if (this.#state.token === undefined) return
    try {
      await this.client.operator()
      this.#set({ operator: 'ok' })
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) this.#set({ operator: 'rejected' })
    }
  }

  /** Re-reads status, network and node info. */
  async refresh(): Promise<void> {
    this.#refreshedAt = Date.now()
    try {
      const [status, net, info] = await Promise.all([
        this.client.status(),
        this.client.net().catch(() => undefined),
        this.#state.info === undefined ? this.client.info().catch(() => undefined) : Promise.resolve(this.#state.info),
      ])
      this.#statusAt = Date.now()
      const height = Math.max(this.#state.height, status.height)
      const nat = this.#state.nat ?? (net === undefined ? undefined : natFromView(net.nat))
      this.#set({ status, net, info, height, nat, error: undefined })
    } catch (err) {
      this.#set({ error: err instanceof Error ? err.message : String(err) })
    }
  }

  async #stream(): Promise<void> {
    const events = this.client.events({
      // 0: replay what the node still remembers (recent blocks, finality, jobs), so the charts
      // and tables are not empty when the page opens.
      lastEventId: 0,
      onOpen: ({ latestSeq }) => (this.#replayedUpTo = latestSeq),
      signal: this.#abort.signal,
      onStatus: (status) => {
        this.#set({ health: status === 'open' ? 'live' : 'offline' })
        if (status === 'open') void this.refresh()
      },
    })
    try {
      for await (const event of events) this.#onEvent(event)
    } catch (err) {
      this.#set({ health: 'offline', error: err instanceof Error ? err.message : String(err) })
    }
  }

  #onEvent(event: NodeEvent): void {
    const at = Date.now()
    const feed = [{ ...event, at }, ...this.#state.feed].slice(0, KEEP_FEED)
    switch (event.type) {
      case 'block': {
        const b = event.data
        if (this.#state.blocks.some((x) => x.height === b.height)) return
        // Consensus position and mempool follow the blocks, at most every REFRESH_ON_BLOCK_MS.
        if (event.seq > this.#replayedUpTo && at - this.#refreshedAt > REFRESH_ON_BLOCK_MS) void this.refresh()
        this.#set({
          feed,
          height: Math.max(this.#state.height, b.height),
          lastBlockAt: Math.max(this.#state.lastBlockAt ?? 0, b.time),
          health: 'live',
          blocks: [b, ...this.#state.blocks].slice(0, KEEP_BLOCKS),
        })
        return
      }
      case 'finality': {
        const { heights, seconds } = this.#state.finality
        this.#set({
          feed,
          finality: {
            heights: [...heights, event.data.height].slice(-KEEP_FINALITY),
            seconds: [...seconds, event.data.seconds].slice(-KEEP_FINALITY),
          },
        })
        return
      }
      case 'job': {
        // Replayed jobs happened at unknown earlier times: they go in the list, not the rate.
        if (event.seq > this.#replayedUpTo) {
          const second = Math.floor(at / 1000)
          const bucket = this.#jobBuckets.get(second) ?? { count: 0, latency: 0 }
          bucket.count += 1
          bucket.latency += event.data.latencyMs
          this.#jobBuckets.set(second, bucket)
        }
        this.#set({ feed, jobs: [event.data, ...this.#state.jobs].slice(0, 50), jobSeries: this.#series() })
        return
      }
      case 'peer':
        this.#set({ feed, peerLog: [{ ...event.data, at }, ...this.#state.peerLog].slice(0, 30) })
        if (event.seq > this.#replayedUpTo) void this.refresh()
        return
      case 'nat':
        this.#set({ feed, nat: event.data })
        return
      case 'slash':
        this.#set({ feed, slashes: [event.data, ...this.#state.slashes].slice(0, 30) })
        return
      case 'model.fetch': {
        const f = event.data
        const before = this.#state.fetches.find((x) => x.model === f.model)
        // a fetch's many progress events would crowd the feed: only its start and its end go in
        const news = before === undefined || before.state !== f.state || before.startedAt !== f.startedAt
        this.#set({
          ...(news ? { feed } : {}),
          fetches: [f, ...this.#state.fetches.filter((x) => x.model !== f.model)].slice(0, KEEP_FETCHES),
        })
        return
      }
    }
  }

  #series(): JobSeries {
    const now = Math.floor(Date.now() / 1000)
    const series = emptySeries()
    for (let s = now - JOB_WINDOW_S + 1; s <= now; s++) {
      const bucket = this.#jobBuckets.get(s)
      series.t.push(s)
      series.perSecond.push(bucket?.count ?? 0)
      series.latencyMs.push(bucket === undefined ? null : bucket.latency / bucket.count)
    }
    for (const key of this.#jobBuckets.keys()) if (key <= now - JOB_WINDOW_S) this.#jobBuckets.delete(key)
    return series
  }

  #tick(): void {
    // The jobs chart scrolls every second, with or without jobs.
    const patch: Partial<LiveState> = { jobSeries: this.#series() }
    const last = this.#state.lastBlockAt
    const { health, status } = this.#state
    const quiet = last !== undefined && Date.now() - last > STALE_MS
    if (quiet && (health === 'live' || health === 'idle' || health === 'stale')) {
      // An idle chain makes no empty blocks: quiet is healthy while a fresh status says it waits for work.
      const idle = status?.consensus.idle === true && Date.now() - this.#statusAt < 3 * POLL_MS
      patch.health = idle ? 'idle' : 'stale'
    }
    this.#set(patch)
  }
}

/** The live state; re-renders the component on every change. */
export function useLive(live: NodeLive): LiveState {
  const [state, setState] = useState(live.state)
  useEffect(() => live.subscribe(() => setState(live.state)), [live])
  return state
}
