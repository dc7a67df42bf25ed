/**
 * Node configuration: one table of keys, each with a default, an environment variable and a
 * parser. Values come from (highest first) command-line flags > environment > the home's
 * `config.json` > defaults, and every value is validated with a message that names the key,
 * where the bad value came from, and what is expected.
 */
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { ConfigError } from './errors.ts'
import { LOG_LEVELS, type LogLevel } from './logger.ts'

export const CONFIG_FILE_NAME = 'config.json'

export type ConfigSource = 'flag' | 'env' | 'file' | 'default'

interface KeySpec<T> {
  description: string
  /** Environment variable that sets this key. */
  env: string
  default: () => T
  /** Returns the parsed value, or throws a string that says what is expected. */
  parse: (raw: unknown) => T
}

export interface DonghaeConfig {
  logLevel: LogLevel
  moniker: string
  /** TCP and QUIC port of the p2p host (WebSockets on the next port). */
  p2pPort: number
  /** The p2p transports the host listens on and dials with: tcp (TCP p2pPort), quic (UDP p2pPort), ws (TCP p2pPort + 1). */
  transport: Array<(typeof TRANSPORTS)[number]>
  /** Address the p2p host listens on. */
  listenHost: string
  /** HTTP API port and address. */
  apiPort: number
  apiHost: string
  /** Browser origins allowed to call the HTTP API from other pages (CORS); the dashboard needs none. */
  apiCors: string[]
  /** Host names the HTTP API answers for besides loopback and its own address (DNS-rebinding guard). */
  apiAllowedHosts: string[]
  /** Requests one client address may make to the HTTP API per minute (beyond it: 429). */
  apiRateLimit: number
  /** Multiaddrs (with /p2p/<id>) dialled at start and when alone. */
  bootstrap: string[]
  /** LAN discovery by multicast DNS. */
  mdns: boolean
  /** Port mapping through the home router. */
  nat: 'auto' | 'pmp' | 'upnp' | 'off'
  /** Serve models to the network (a worker must also be bonded on chain); false: a gateway only. */
  worker: boolean
  /** Jobs the worker runs at once. */
  workerSlots: number
  /** Memory for the worker's loaded models, MiB; 0: half the machine's memory. */
  workerMemory: number
  /** ONNX Runtime's execution provider. */
  executionProvider: 'auto' | 'cpu' | 'coreml' | 'cuda'
  /**
   * Which registered models the worker serves: `all`, `models:<name or CID>,...` or
   * `publishers:<did>,...` (models registered by those accounts).
   */
  serve: string
  /** Share of the gateway's own jobs followed by a canary, parts per million. */
  canaryPpm: number
  /** Where models run: a sandboxed child process per model, or inside the node (trusted models only). */
  runner: 'sandbox' | 'in-process'
  /** Disk budget of model files (the content store), bytes; unpinned files are evicted, least recently used first. */
  modelStorage: number
  /** Mixture-of-Experts: nodes that host each expert block (rendezvous over the validators); 0: host none. */
  expertReplicas: number
  /** Memory for loaded experts (local generations and the experts this node serves), MiB. */
  expertMemory: number
  /** Fine-tune hosted experts with the built-in trainer while no generation runs (pauses within 50 ms of one). */
  expertTraining: boolean
  /** Run a DID directory: store, search and gossip signed registrations (docs/directory.md). */
  directory: boolean
  /** Hold other people's sealed payment envelopes until their recipients collect them (docs/wallet.md). */
  walletMailbox: boolean
  /** Answer signed WebRTC offers (POST /v1/webrtc/offer) and serve the node's language model on the data channel. */
  webrtc: boolean
  /** STUN servers for WebRTC (`stun:host:port`); empty: host candidates only (loopback, LAN, mapped ports). */
  iceServers: string[]
  /** UDP port of the node's STUN Binding responder, which tells peers their public address; 0: off. */
  stunPort: number
  /** Also listen for WebRTC Direct (browsers dial it with no signalling) on UDP p2pPort + 1. */
  webrtcDirect: boolean
}

/** The p2p transports (TRANSPORT_NAMES in net/host.ts, a layer above). */
const TRANSPORTS = ['tcp', 'quic', 'ws'] as const

function oneOf<const V extends string>(values: readonly V[]): (raw: unknown) => V {
  return (raw) => {
    if (typeof raw === 'string' && (values as readonly string[]).includes(raw)) return raw as V
    throw `expected one of ${values.join(', ')}`
  }
}

function text(pattern: RegExp, hint: string): (raw: unknown) => string {
  return (raw) => {
    if (typeof raw === 'string' && pattern.test(raw)) return raw
    throw `expected ${hint}`
  }
}

function port(raw: unknown): number {
  const value = typeof raw === 'string' && /^[0-9]+$/.test(raw) ? Number(raw) : raw
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 65_535) return value
  throw 'expected a port number 0-65535'
}

function bool(raw: unknown): boolean {
  if (raw === true || raw === 'true' || raw === '1' || raw === 'yes') return true
  if (raw === false || raw === 'false' || raw === '0' || raw === 'no') return false
  throw 'expected true or false'
}

function integer(min: number, max: number): (raw: unknown) => number {
  return (raw) => {
    const value = typeof raw === 'string' && /^[0-9]+$/.test(raw) ? Number(raw) : raw
    if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value
    throw `expected a whole number ${min}-${max}`
  }
}

const BYTE_UNITS: Readonly<Record<string, bigint>> = {
  '': 1n,
  B: 1n,
  KiB: 1n << 10n,
  MiB: 1n << 20n,
  GiB: 1n << 30n,
  TiB: 1n << 40n,
}

/** A size in bytes: a whole number, or one with a binary unit (`16GiB`, `512 MiB`). */
function byteSize(raw: unknown): number {
  const text = typeof raw === 'number' && Number.isSafeInteger(raw) ? String(raw) : raw
  const m = typeof text === 'string' ? /^\s*([0-9]{1,16})\s*(B|KiB|MiB|GiB|TiB)?\s*$/.exec(text) : null
  if (m !== null) {
    const bytes = BigInt(m[1] as string) * (BYTE_UNITS[m[2] ?? ''] as bigint)
    if (bytes <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(bytes)
  }
  throw 'expected a size in bytes: a whole number, or with a unit B, KiB, MiB, GiB or TiB (e.g. 16GiB)'
}

/** A list from the environment (comma-separated text) or from config.json (an array), unchecked. */
function commaList(raw: unknown): unknown {
  return typeof raw === 'string'
    ? raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0)
    : raw
}

function transportList(raw: unknown): DonghaeConfig['transport'] {
  const list = commaList(raw)
  if (
    Array.isArray(list) &&
    list.length > 0 &&
    list.every((t) => typeof t === 'string' && (TRANSPORTS as readonly string[]).includes(t))
  )
    return [...new Set(list as DonghaeConfig['transport'])]
  const unknown = Array.isArray(list) ? list.filter((t) => !(TRANSPORTS as readonly unknown[]).includes(t)) : []
  throw `${unknown.length > 0 ? `unknown transport ${unknown.map((t) => JSON.stringify(t)).join(', ')}; ` : ''}expected one or more of ${TRANSPORTS.join(', ')} (comma-separated in the environment and the flag), e.g. quic or tcp,quic`
}

function multiaddrList(raw: unknown): string[] {
  const list = commaList(raw)
  if (Array.isArray(list) && list.every((a) => typeof a === 'string' && a.startsWith('/') && a.includes('/p2p/')))
    return list as string[]
  throw 'expected multiaddrs with /p2p/<peer id>, comma-separated in the environment'
}

function originList(raw: unknown): string[] {
  const list = commaList(raw)
  if (Array.isArray(list) && list.every((o) => typeof o === 'string' && /^https?:\/\/[^/\s]+$/.test(o)))
    return list as string[]
  throw 'expected origins such as http://localhost:5173 (scheme://host[:port], no path), comma-separated in the environment'
}

/** `stun:host[:port]` (host a name, an IPv4 address or a bracketed IPv6 address). */
const STUN_URL = /^stun:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252})(:[0-9]{1,5})?$/

function stunList(raw: unknown): string[] {
  const list = commaList(raw)
  if (
    Array.isArray(list) &&
    list.length <= 16 &&
    list.every((u) => typeof u === 'string' && STUN_URL.test(u) && Number(/:([0-9]{1,5})$/.exec(u)?.[1] ?? 0) <= 65_535)
  )
    return list as string[]
  throw 'expected at most 16 STUN servers such as stun:stun.example.org:3478 (stun:host[:port]), comma-separated in the environment'
}

function hostList(raw: unknown): string[] {
  const list = commaList(raw)
  const host = /^(\*|\[[0-9a-fA-F:.]+\](:[0-9]{1,5})?|[A-Za-z0-9._-]+(:[0-9]{1,5})?)$/
  if (Array.isArray(list) && list.every((h) => typeof h === 'string' && host.test(h))) return list as string[]
  throw 'expected host names such as node.example.org or node.lan:26657 (name[:port], [IPv6]:port, or * for any), comma-separated in the environment'
}

export const CONFIG_KEYS: { readonly [K in keyof DonghaeConfig]: KeySpec<DonghaeConfig[K]> } = {
  logLevel: {
    description: 'log verbosity',
    env: 'DONGHAE_LOG_LEVEL',
    default: () => 'info',
    parse: oneOf(LOG_LEVELS),
  },
  moniker: {
    description: "the node's human-readable name, shown to peers and in `donghae id`",
    env: 'DONGHAE_MONIKER',
    default: () => hostname().slice(0, 64) || 'donghae',
    parse: text(/^[\p{L}\p{N}][\p{L}\p{N} ._-]{0,63}$/u, '1-64 letters, digits, spaces, ".", "_" or "-"'),
  },
  p2pPort: {
    description: 'p2p TCP/QUIC port (WebSockets: +1)',
    env: 'DONGHAE_P2P_PORT',
    default: () => 26656,
    parse: port,
  },
  transport: {
    description:
      'p2p transports the host listens on and dials with (only these): tcp on TCP p2pPort, quic on UDP p2pPort, ws (WebSockets) on TCP p2pPort + 1; peers must share one with this node; default tcp,quic (ws on the default p2pPort + 1 would take the default apiPort); see docs/transports.md',
    env: 'DONGHAE_TRANSPORT',
    default: () => ['tcp', 'quic'],
    parse: transportList,
  },
  listenHost: {
    description: 'address the p2p host listens on',
    env: 'DONGHAE_LISTEN_HOST',
    default: () => '0.0.0.0',
    parse: text(/^[0-9.]{7,15}$/, 'an IPv4 address such as 0.0.0.0'),
  },
  apiPort: { description: 'HTTP API port', env: 'DONGHAE_API_PORT', default: () => 26657, parse: port },
  apiHost: {
    description: 'address the HTTP API listens on',
    env: 'DONGHAE_API_HOST',
    default: () => '127.0.0.1',
    parse: text(/^[0-9.]{7,15}$/, 'an IPv4 address such as 127.0.0.1'),
  },
  apiCors: {
    description:
      'origins allowed to call the HTTP API from a browser page they serve (CORS), e.g. http://localhost:5173',
    env: 'DONGHAE_API_CORS',
    default: () => [],
    parse: originList,
  },
  apiAllowedHosts: {
    description:
      'host names the HTTP API answers for besides localhost, 127.0.0.1, [::1] and the address it listens on (what browsers put in Host; others get 421): name for any port, name:port for one, * for any name',
    env: 'DONGHAE_API_ALLOWED_HOSTS',
    default: () => [],
    parse: hostList,
  },
  apiRateLimit: {
    description:
      'requests one client address may make to the HTTP API per minute (429 RATE_LIMITED beyond); raise it for a gateway that many clients reach through one proxy address',
    env: 'DONGHAE_API_RATE_LIMIT',
    default: () => 1_200, // DEFAULT_RATE_LIMIT.max in api/constants.ts (the API is a layer above)
    parse: integer(1, 10_000_000),
  },
  bootstrap: {
    description: 'bootstrap peers (multiaddrs with /p2p/<id>)',
    env: 'DONGHAE_BOOTSTRAP',
    default: () => [],
    parse: multiaddrList,
  },
  mdns: { description: 'LAN discovery by multicast DNS', env: 'DONGHAE_MDNS', default: () => true, parse: bool },
  nat: {
    description: 'port mapping: auto (NAT-PMP, then UPnP), pmp, upnp or off',
    env: 'DONGHAE_NAT',
    default: () => 'auto',
    parse: oneOf(['auto', 'pmp', 'upnp', 'off'] as const),
  },
  worker: {
    description: 'serve models to the network (also needs a worker bond on chain); false runs a gateway only',
    env: 'DONGHAE_WORKER',
    default: () => true,
    parse: bool,
  },
  workerSlots: {
    description: 'jobs the worker runs at once',
    env: 'DONGHAE_WORKER_SLOTS',
    default: () => 2,
    parse: integer(1, 64),
  },
  workerMemory: {
    description:
      "memory for the worker's loaded models, MiB (the least recently used is unloaded to make room; larger models are not served); 0: half the machine's memory",
    env: 'DONGHAE_WORKER_MEMORY',
    default: () => 0,
    parse: integer(0, 16 * 1024 * 1024),
  },
  executionProvider: {
    description: "ONNX Runtime's provider: auto (CoreML on macOS, CUDA when installed, else CPU), cpu, coreml, cuda",
    env: 'DONGHAE_EXECUTION_PROVIDER',
    default: () => 'auto',
    parse: oneOf(['auto', 'cpu', 'coreml', 'cuda'] as const),
  },
  serve: {
    description: 'models the worker serves: all, models:<name or CID>,\u2026 or publishers:<did>,\u2026',
    env: 'DONGHAE_SERVE',
    default: () => 'all',
    parse: text(
      /^(all|models:[^\s,]+(,[^\s,]+)*|publishers:did:key:z[1-9A-HJ-NP-Za-km-z]+(,did:key:z[1-9A-HJ-NP-Za-km-z]+)*)$/,
      'all, models:<name or CID>,\u2026 or publishers:<did:key>,\u2026',
    ),
  },
  runner: {
    description:
      'where models run: sandbox (a child process per model, empty directory, limits) or in-process (trusted models only)',
    env: 'DONGHAE_RUNNER',
    default: () => 'sandbox',
    parse: oneOf(['sandbox', 'in-process'] as const),
  },
  canaryPpm: {
    description: "share of the gateway's own jobs followed by a canary, parts per million",
    env: 'DONGHAE_CANARY_PPM',
    default: () => 5_000,
    parse: integer(0, 1_000_000),
  },
  modelStorage: {
    description:
      'disk budget of model files, bytes (e.g. 16GiB): beyond it the least recently used unpinned files are evicted, and a model that still does not fit is refused before it is fetched',
    env: 'DONGHAE_MODEL_STORAGE',
    default: () => 16 * 1024 ** 3, // CONTENT_STORE_DEFAULTS.budgetBytes in net/content-store.ts (a layer above)
    parse: byteSize,
  },
  expertReplicas: {
    description:
      'Mixture-of-Experts: nodes that host each expert block, chosen by rendezvous hashing over the validators (this node serves the ones it is chosen for); 0: host none',
    env: 'DONGHAE_EXPERT_REPLICAS',
    default: () => 2,
    parse: integer(0, 64),
  },
  expertMemory: {
    description: 'memory for loaded experts, MiB (least recently used unloaded first)',
    env: 'DONGHAE_EXPERT_MEMORY',
    default: () => 256,
    parse: integer(1, 16 * 1024 * 1024),
  },
  expertTraining: {
    description:
      'fine-tune hosted experts with the built-in trainer while no generation runs (inference first: training pauses within 50 ms of a generation)',
    env: 'DONGHAE_EXPERT_TRAINING',
    default: () => false,
    parse: bool,
  },
  webrtc: {
    description:
      "answer signed WebRTC offers (POST /v1/webrtc/offer, open to pages on any origin: each offer is signed by its sender's DID) and serve the node's language model on the data channel",
    env: 'DONGHAE_WEBRTC',
    default: () => true,
    parse: bool,
  },
  iceServers: {
    description:
      'STUN servers for WebRTC (node data channels and the libp2p WebRTC transport), e.g. stun:stun.example.org:3478; empty: host candidates only (loopback, LAN, mapped ports)',
    env: 'DONGHAE_ICE_SERVERS',
    default: () => [],
    parse: stunList,
  },
  stunPort: {
    description:
      "UDP port of a STUN Binding responder (RFC 5389, rate limited) that tells peers their public address, so nodes behind NATs can hole-punch WebRTC connections; 3478 is STUN's port; 0: off. Peers list it in iceServers as stun:<this node's public address>:<port>",
    env: 'DONGHAE_STUN_PORT',
    default: () => 0,
    parse: port,
  },
  webrtcDirect: {
    description:
      'also listen for WebRTC Direct on UDP p2pPort + 1 (browsers dial /webrtc-direct/certhash/\u2026 with no signalling); useful only when that UDP port is reachable from outside (a public address or a forwarded port); the certificate hash changes at every restart',
    env: 'DONGHAE_WEBRTC_DIRECT',
    default: () => false,
    parse: bool,
  },
  directory: {
    description:
      'run a DID directory: take signed registrations, answer searches by text, category and tag (GET /v1/directory/search) and share entries with the other directories by gossip; see docs/directory.md',
    env: 'DONGHAE_DIRECTORY',
    default: () => false,
    parse: bool,
  },
  walletMailbox: {
    description:
      'hold sealed payment envelopes for recipients that are offline, until they collect them (each one paid for by a committed transfer; at most 2,048, 64 per recipient, 7 days); the node cannot read them; see docs/wallet.md',
    env: 'DONGHAE_WALLET_MAILBOX',
    default: () => true,
    parse: bool,
  },
}

export type ConfigKey = keyof DonghaeConfig

export interface LoadConfigOptions {
  /** Path of the JSON config file; a missing file means "no file values". */
  file?: string
  /** Values from command-line flags (undefined entries are ignored). */
  flags?: Partial<Record<ConfigKey, unknown>>
  /** @default process.env */
  env?: NodeJS.ProcessEnv
}

export interface LoadedConfig {
  config: DonghaeConfig
  sources: Record<ConfigKey, ConfigSource>
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`, { cause: err })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`, {
      details: { file: path },
    })
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must hold a JSON object`, { details: { file: path } })
  }
  const known = Object.keys(CONFIG_KEYS)
  for (const key of Object.keys(parsed)) {
    if (!known.includes(key)) {
      throw new ConfigError(`unknown key "${key}" in config file ${path}; known keys: ${known.join(', ')}`, {
        details: { key, file: path },
      })
    }
  }
  return parsed as Record<string, unknown>
}

function describeSource(source: ConfigSource, key: ConfigKey, file: string | undefined): string {
  switch (source) {
    case 'flag':
      return `flag --${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
    case 'env':
      return `environment variable ${CONFIG_KEYS[key].env}`
    case 'file':
      return `config file ${file ?? ''}`
    case 'default':
      return 'the default'
  }
}

export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const env = options.env ?? process.env
  const fileValues = options.file === undefined ? {} : readConfigFile(options.file)
  const config: Partial<Record<ConfigKey, unknown>> = {}
  const sources: Partial<Record<ConfigKey, ConfigSource>> = {}
  for (const key of Object.keys(CONFIG_KEYS) as ConfigKey[]) {
    const spec = CONFIG_KEYS[key] as KeySpec<unknown>
    const candidates: Array<[ConfigSource, unknown]> = [
      ['flag', options.flags?.[key]],
      ['env', env[spec.env]],
      ['file', fileValues[key]],
    ]
    const [source, raw] = candidates.find(([, value]) => value !== undefined) ?? ['default', undefined]
    try {
      config[key] = source === 'default' ? spec.default() : spec.parse(raw)
    } catch (expected) {
      const shown = JSON.stringify(raw)
      throw new ConfigError(
        `config ${key} = ${shown} from ${describeSource(source, key, options.file)} is invalid: ${String(expected)}`,
        { details: { key, source } },
      )
    }
    sources[key] = source
  }
  return { config: config as DonghaeConfig, sources: sources as Record<ConfigKey, ConfigSource> }
}

/** The values `donghae init` writes to a new home's config file. */
export function defaultConfig(): DonghaeConfig {
  const out: Partial<Record<ConfigKey, unknown>> = {}
  for (const key of Object.keys(CONFIG_KEYS) as ConfigKey[]) out[key] = CONFIG_KEYS[key].default()
  return out as DonghaeConfig
}
