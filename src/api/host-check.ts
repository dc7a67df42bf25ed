/**
 * The `Host` and `Origin` checks that keep web pages away from a node's API.
 *
 * DNS rebinding: a page on `http://evil.example:26657` makes `evil.example` resolve to
 * 127.0.0.1, and the browser then lets it read the node's answers, since to the browser it is
 * talking to its own origin. The one thing the browser cannot hide is the name it dialled: the
 * request carries `Host: evil.example:26657`. So the API answers only requests whose `Host` is
 *
 *   - localhost, 127.0.0.1 or [::1] (any spelling of the loopback addresses),
 *   - the address the connection actually reached (the configured `apiHost`, or with 0.0.0.0
 *     the interface a LAN client used),
 *   - or a name in `allowedHosts` (config `apiAllowedHosts`): `name` for any port (a reverse
 *     proxy on 443), `name:port` for one port; `*` turns the check off,
 *
 * with, for the first two, the port the API listens on. Anything else is 421 `HOST_NOT_ALLOWED`.
 * A request without `Host` (HTTP/1.0; never a browser) passes.
 *
 * Cross-site requests: a page on another origin can still send requests to `127.0.0.1:26657`
 * (a form POST needs no CORS permission; only reading the answer does). Browsers name the page
 * in `Origin` on every cross-origin request and on every POST, so a request whose `Origin` is
 * neither the API's own origin (an allowed host, as above) nor in the CORS list (`apiCors`) is
 * 403 `ORIGIN_NOT_ALLOWED` before any handler runs. Non-browser clients send no `Origin`.
 */
import { isIP } from 'node:net'
import type { FastifyRequest } from 'fastify'
import { DonghaeError } from '../core/errors.ts'
import { untrustedText } from '../core/untrusted-text.ts'

/** A request whose Host header names something this API does not answer for (DNS rebinding). */
export class HostNotAllowedError extends DonghaeError {
  static override readonly code: string = 'HOST_NOT_ALLOWED'
  override name = 'HostNotAllowedError'
}

/** A browser request from a page whose origin may not call the API. */
export class OriginNotAllowedError extends DonghaeError {
  static override readonly code: string = 'ORIGIN_NOT_ALLOWED'
  override name = 'OriginNotAllowedError'
}

export interface HostPolicyOptions {
  /** Extra names (config apiAllowedHosts): `name`, `name:port`, `[v6]:port`, or `*` for any. */
  allowedHosts?: readonly string[]
  /** Origins allowed by CORS (config apiCors); requests from them pass the Origin check. */
  cors?: readonly string[]
}

interface HostName {
  name: string
  port: number | undefined
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1'])

/** `host[:port]` or `[v6][:port]` → lower-case name (brackets dropped, no trailing dot) and port. */
export function parseHostHeader(value: string): HostName | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s/@]+))(?::([0-9]{1,5}))?$/.exec(value.trim())
  if (match === null) return undefined
  const name = (match[1] ?? match[2] ?? '').toLowerCase().replace(/\.$/, '')
  const port = match[3] === undefined ? undefined : Number(match[3])
  if (name === '' || (port !== undefined && port > 65_535)) return undefined
  return { name, port }
}

/** An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) as plain IPv4. */
function plainAddress(address: string): string {
  const lower = address.toLowerCase()
  return lower.startsWith('::ffff:') && isIP(lower.slice(7)) === 4 ? lower.slice(7) : lower
}

function isLoopback(name: string): boolean {
  return LOOPBACK_NAMES.has(name) || name.endsWith('.localhost') || /^127(\.[0-9]{1,3}){3}$/.test(name)
}

export class HostPolicy {
  readonly #any: boolean
  /** name → ports allowed (undefined: any port). */
  readonly #extra = new Map<string, Set<number> | undefined>()
  readonly #cors: ReadonlySet<string>

  constructor(options: HostPolicyOptions = {}) {
    const allowed = options.allowedHosts ?? []
    this.#any = allowed.includes('*')
    for (const entry of allowed) {
      if (entry === '*') continue
      const parsed = parseHostHeader(entry)
      if (parsed === undefined) throw new DonghaeError(`allowed host ${JSON.stringify(entry)} is not a host[:port]`)
      const ports = this.#extra.get(parsed.name)
      if (parsed.port === undefined) this.#extra.set(parsed.name, undefined)
      else if (!this.#extra.has(parsed.name)) this.#extra.set(parsed.name, new Set([parsed.port]))
      else ports?.add(parsed.port)
    }
    this.#cors = new Set((options.cors ?? []).map((o) => o.toLowerCase()))
  }

  /** Whether `host` (a Host header, or an origin's host) names this API for a connection to `local`. */
  allows(host: HostName, local: { address: string | undefined; port: number | undefined }): boolean {
    if (this.#any) return true
    if (this.#extra.has(host.name)) {
      const ports = this.#extra.get(host.name)
      if (ports === undefined || (host.port !== undefined && ports.has(host.port))) return true
    }
    const samePort = local.port === undefined || host.port === undefined || host.port === local.port
    if (!samePort) return false
    if (isLoopback(host.name)) return true
    return (
      local.address !== undefined && isIP(host.name) !== 0 && plainAddress(host.name) === plainAddress(local.address)
    )
  }

  /** Throws HostNotAllowedError / OriginNotAllowedError for a request the API must not answer. */
  check(request: FastifyRequest): void {
    const local = { address: request.socket.localAddress, port: request.socket.localPort }
    const header = request.headers.host
    if (header !== undefined) {
      const host = parseHostHeader(header)
      if (host === undefined || !this.allows(host, local))
        throw new HostNotAllowedError(
          `this node does not answer for host ${JSON.stringify(untrustedText(header, 100))}: use http://127.0.0.1:<apiPort>, or add the name to the config key apiAllowedHosts (a page that rebinds its own name to this node is refused here)`,
        )
    }
    const origin = request.headers.origin
    if (origin === undefined || this.#cors.has(origin.toLowerCase())) return
    if (!this.#sameSite(origin, local))
      throw new OriginNotAllowedError(
        `requests from pages on ${JSON.stringify(untrustedText(origin, 100))} are refused: the API answers its own dashboard and the origins in the config key apiCors`,
      )
  }

  #sameSite(origin: string, local: { address: string | undefined; port: number | undefined }): boolean {
    let url: URL
    try {
      url = new URL(origin)
    } catch {
      return false // "null" (sandboxed frames, file: pages) and garbage
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return false
    const host = parseHostHeader(url.host)
    if (host === undefined) return false
    const port = host.port ?? (url.protocol === 'https:' ? 443 : 80)
    return this.allows({ name: host.name, port }, local)
  }
}
