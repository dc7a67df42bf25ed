/**
 * The `Host` and `Origin` checks that keep web pages away from a node's API.
 *
 * DNS rebinding: a page on `http://evil.example:26657` makes `evil.example` resolve to
 * 127.0.0.1, and the browser then lets it read the node's answers, since to the browser it is
 * talking to its own origin. The one thing the browser cannot hide is the name it dialled: the
 * request carries `Host: evil.example:26657`. So the API answers only requests whose `Host` is
 *
 *   - localhost, 127.0.0.1, [::1] (or another loopback address, or a *.localhost name),
 *   - the address the connection actually reached (the configured `apiHost`, or with 0.0.0.0
 *     the interface a LAN client used),
 *   - or a name in `allowedHosts` (config `apiAllowedHosts`): `name` for any port (a reverse
 *     proxy on 443), `name:port` for that port only; `*` turns the check off.
 *
 * The port of a loopback name or of the connection's own address is not checked: no page can
 * rebind those names, and an SSH tunnel (`ssh -L 8080:127.0.0.1:26657`) or a development proxy
 * reaches the node as localhost on another port. Anything else is 421 `HOST_NOT_ALLOWED`. A
 * request without `Host` (HTTP/1.0; never a browser) passes.
 *
 * Cross-site requests: a page on another origin can still send requests to `127.0.0.1:26657`
 * (a form POST needs no CORS permission; only reading the answer does). Browsers name the page
 * in `Origin` on every cross-origin request and on every POST, so a request whose `Origin` is
 * neither the origin it is addressed to (scheme-less: the same host and port as `Host`, as for
 * the node's own dashboard) nor in the CORS list (`apiCors`) is 403 `ORIGIN_NOT_ALLOWED` before
 * any handler runs. Non-browser clients send no `Origin`.
 *
 * Routes open to every page: a route with `config: { anyOrigin: true }` skips both checks (its
 * CORS answer is `Access-Control-Allow-Origin: *`). Only the signed WebRTC signalling routes are
 * (routes/webrtc.ts: a node's dashboard offers to another node from its own origin): they
 * carry no ambient authority (no cookie, no token; an offer is authenticated by its DID's
 * signature, a session by its unguessable id), so a page reading their answers, whether by CORS
 * or through a rebound name, learns nothing it could not ask for itself.
 */
import { isIP } from 'node:net'
import type { FastifyRequest } from 'fastify'
import { DonghaeError } from '../core/errors.ts'
import { untrustedText } from '../core/untrusted-text.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route answers pages on any origin: the Host and Origin checks do not apply (see above). */
    anyOrigin?: boolean
  }
}

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

/** `host[:port]` or `[v6][:port]` -> lower-case name (brackets dropped, no trailing dot) and port. */
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
  /** name -> ports allowed (undefined: any port). */
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

  /** Whether `host` (from a Host header) names this API, for a connection that reached `localAddress`. */
  allows(host: HostName, localAddress: string | undefined): boolean {
    if (this.#any) return true
    if (this.#extra.has(host.name)) {
      const ports = this.#extra.get(host.name)
      if (ports === undefined || (host.port !== undefined && ports.has(host.port))) return true
    }
    if (isLoopback(host.name)) return true
    return localAddress !== undefined && isIP(host.name) !== 0 && plainAddress(host.name) === plainAddress(localAddress)
  }

  /** Throws HostNotAllowedError / OriginNotAllowedError for a request the API must not answer. */
  check(request: FastifyRequest): void {
    if ((request.routeOptions as Partial<FastifyRequest['routeOptions']> | undefined)?.config?.anyOrigin === true)
      return
    const header = request.headers.host
    const host = header === undefined ? undefined : parseHostHeader(header)
    if (header !== undefined && (host === undefined || !this.allows(host, request.socket.localAddress)))
      throw new HostNotAllowedError(
        `this node does not answer for host ${JSON.stringify(untrustedText(header, 100))}: use http://127.0.0.1:<apiPort>, or add the name to the config key apiAllowedHosts (a page that rebinds its own name to this node is refused here)`,
      )
    const origin = request.headers.origin
    if (origin === undefined || this.#cors.has(origin.toLowerCase())) return
    if (host === undefined || !sameAuthority(origin, host))
      throw new OriginNotAllowedError(
        `requests from pages on ${JSON.stringify(untrustedText(origin, 100))} are refused: the API answers pages it serves itself and the origins in the config key apiCors`,
      )
  }
}

/** True when `origin` (scheme://host[:port]) names the same host and port as the Host header. */
function sameAuthority(origin: string, host: HostName): boolean {
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return false // "null" (sandboxed frames, file: pages) and garbage
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false
  const from = parseHostHeader(url.host)
  if (from === undefined) return false
  const defaultPort = url.protocol === 'https:' ? 443 : 80
  return from.name === host.name && (from.port ?? defaultPort) === (host.port ?? defaultPort)
}
