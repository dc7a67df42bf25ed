/**
 * UPnP IGD client: SSDP discovery (node:dgram), the device description, and the SOAP actions of
 * WANIPConnection v1/v2 and WANPPPConnection v1 (node:http). Both IGD versions are searched, so
 * an IGDv1-only router is found; mappings are deleted by the EXTERNAL port they got. Every answer
 * is size-limited, parsed strictly (`xml.ts`) and logged at debug; SOAP faults become
 * `UpnpSoapError` with the UPnP error code.
 */
import { createSocket } from 'node:dgram'
import { isIPv4 } from 'node:net'
import { AbortError } from '../../core/errors.ts'
import { silentLogger, type Logger } from '../../core/logger.ts'
import { NatProtocolError, UpnpHttpError, UpnpNotFoundError, UpnpSoapError } from './errors.ts'
import { child, childText, descendants, parseXml } from './xml.ts'
import type { TransportProtocol } from './natpmp.ts'

/**
 * `node:http` as its CommonJS exports: an ES import of it makes Node read every export, and its
 * `WebSocket`, `MessageEvent` and `CloseEvent` load the bundled undici (and http2) into every node
 * for nothing (about 3 MB of heap; docs/performance.md, "Memory of an idle node").
 */
const { request: httpRequest } = process.getBuiltinModule('node:http')

export const SSDP_ADDRESS = '239.255.255.250'
export const SSDP_PORT = 1900
export const SEARCH_TARGETS = [
  'urn:schemas-upnp-org:device:InternetGatewayDevice:2',
  'urn:schemas-upnp-org:device:InternetGatewayDevice:1',
  'urn:schemas-upnp-org:service:WANIPConnection:2',
  'urn:schemas-upnp-org:service:WANIPConnection:1',
  'urn:schemas-upnp-org:service:WANPPPConnection:1',
] as const
/** Connection services, most preferred first. */
export const WAN_SERVICES = [
  'urn:schemas-upnp-org:service:WANIPConnection:2',
  'urn:schemas-upnp-org:service:WANIPConnection:1',
  'urn:schemas-upnp-org:service:WANPPPConnection:1',
] as const

/** Size limits on what a router may send. */
export const SSDP_MAX_RESPONSE = 2048
export const DESCRIPTION_MAX_BYTES = 64 * 1024
export const SOAP_MAX_BYTES = 16 * 1024
const URL_MAX_LENGTH = 512

export interface SsdpResponse {
  location: string
  st: string
  usn?: string
  server?: string
}

export function encodeMSearch(st: string, mx = 2): string {
  return `M-SEARCH * HTTP/1.1\r\nHOST: ${SSDP_ADDRESS}:${SSDP_PORT}\r\nMAN: "ssdp:discover"\r\nMX: ${mx}\r\nST: ${st}\r\n\r\n`
}

function refuse(what: string, reason: string): never {
  throw new NatProtocolError(`malformed ${what}: ${reason}`)
}

/** Checks that `raw` is an http: URL of sane length and returns it normalized. */
function httpUrl(raw: string, what: string, base?: string): URL {
  if (raw.length > URL_MAX_LENGTH) refuse(what, 'URL too long')
  let url: URL
  try {
    url = new URL(raw, base)
  } catch {
    refuse(what, `${JSON.stringify(raw)} is not a URL`)
  }
  if (url.protocol !== 'http:') refuse(what, `${url.protocol} URL, only http: is used`)
  return url
}

/** Parses one SSDP search answer (an HTTP/1.1 200 response in a datagram). */
export function parseSsdpResponse(bytes: Uint8Array | string): SsdpResponse {
  const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.length
  if (size > SSDP_MAX_RESPONSE) refuse('SSDP answer', `${size} bytes is oversized`)
  const text = typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('latin1')
  const lines = text.split(/\r?\n/)
  if (!/^HTTP\/1\.[01] 200\b/i.test(lines[0] ?? '')) refuse('SSDP answer', 'not an HTTP 200 answer')
  const headers = new Map<string, string>()
  for (const line of lines.slice(1)) {
    if (line === '') break
    const colon = line.indexOf(':')
    if (colon <= 0) refuse('SSDP answer', `bad header line ${JSON.stringify(line.slice(0, 40))}`)
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  const location = headers.get('location')
  const st = headers.get('st')
  if (location === undefined || location === '') refuse('SSDP answer', 'no LOCATION header')
  if (st === undefined || st === '') refuse('SSDP answer', 'no ST header')
  return {
    location: httpUrl(location, 'SSDP answer').href,
    st,
    usn: headers.get('usn'),
    server: headers.get('server'),
  }
}

export interface DiscoverOptions {
  signal?: AbortSignal
  logger?: Logger
  /** How long to wait for a first answer. @default 3000 */
  timeoutMs?: number
  /** After the first answer, how long to keep listening for others. @default 300 */
  settleMs?: number
  /** Bind to (and send multicast from) this LAN address. */
  localAddress?: string
  /** Also search the gateway by unicast (some routers answer only that). */
  gateway?: string
}

/** Searches for IGDs (v1 and v2) by SSDP M-SEARCH; returns the distinct answers, in arrival order. */
export function discoverGateways(options: DiscoverOptions = {}): Promise<SsdpResponse[]> {
  const log = (options.logger ?? silentLogger()).forComponent('donghae:net:nat')
  const { signal } = options
  if (signal?.aborted === true) return Promise.reject(new AbortError())
  const socket = createSocket({ type: 'udp4', reuseAddr: false })
  const found = new Map<string, SsdpResponse>()
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined
    let done = false
    const finish = (err?: unknown): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      socket.removeAllListeners('message')
      socket.on('error', () => {})
      socket.close()
      if (err === undefined) resolve([...found.values()])
      else reject(err)
    }
    const onAbort = (): void => finish(new AbortError())
    signal?.addEventListener('abort', onAbort, { once: true })
    socket.on('error', (err) => finish(err))
    socket.on('message', (msg, rinfo) => {
      try {
        const answer = parseSsdpResponse(msg)
        log.debug({ from: `${rinfo.address}:${rinfo.port}`, answer: msg.toString('latin1') }, 'SSDP answer')
        const key = `${answer.location} ${answer.st}`
        if (!found.has(key)) found.set(key, answer)
        if (found.size === 1) {
          clearTimeout(timer)
          timer = setTimeout(() => finish(), options.settleMs ?? 300)
        }
      } catch (err) {
        log.debug(
          { from: `${rinfo.address}:${rinfo.port}`, bytes: msg.length, error: (err as Error).message },
          'SSDP answer refused',
        )
      }
    })
    socket.bind(0, options.localAddress, () => {
      try {
        if (options.localAddress !== undefined) socket.setMulticastInterface(options.localAddress)
        socket.setMulticastTTL(2)
      } catch (err) {
        log.debug({ error: (err as Error).message }, 'SSDP multicast setup')
      }
      for (const st of SEARCH_TARGETS) {
        const msg = encodeMSearch(st)
        socket.send(msg, SSDP_PORT, SSDP_ADDRESS, (err) => {
          if (err !== null && err !== undefined) log.debug({ error: err.message }, 'SSDP multicast send failed')
        })
        if (options.gateway !== undefined) {
          socket.send(msg, SSDP_PORT, options.gateway, (err) => {
            if (err !== null && err !== undefined) log.debug({ error: err.message }, 'SSDP unicast send failed')
          })
        }
      }
      timer = setTimeout(() => finish(), options.timeoutMs ?? 3000)
    })
  })
}

export interface IgdService {
  /** The device description's URL. */
  location: string
  serviceType: (typeof WAN_SERVICES)[number]
  controlUrl: string
  /** 2 for WANIPConnection:2 (AddAnyPortMapping available), else 1. */
  version: 1 | 2
}

/**
 * Finds the WAN connection services in a device description. Control URLs are resolved against
 * URLBase or the description's URL and must stay on the description's host (a description may
 * not send our requests elsewhere). The most preferred service comes first.
 */
export function parseDescription(xml: string, location: string): IgdService[] {
  const root = parseXml(xml, { maxLength: DESCRIPTION_MAX_BYTES })
  if (root.localName !== 'root') refuse('device description', `root element <${root.name}>`)
  const base = httpUrl(childText(root, 'URLBase') || location, 'device description URLBase', location)
  const origin = httpUrl(location, 'device description location')
  const services: IgdService[] = []
  for (const service of descendants(root, 'service')) {
    const serviceType = childText(service, 'serviceType') ?? ''
    const known = WAN_SERVICES.find((s) => s === serviceType)
    const control = childText(service, 'controlURL')
    if (known === undefined || control === undefined || control === '') continue
    const controlUrl = httpUrl(control, 'controlURL', base.href)
    if (controlUrl.host !== origin.host) continue
    services.push({ location, serviceType: known, controlUrl: controlUrl.href, version: known.endsWith(':2') ? 2 : 1 })
  }
  return services.sort((a, b) => WAN_SERVICES.indexOf(a.serviceType) - WAN_SERVICES.indexOf(b.serviceType))
}

function escapeXml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

export type SoapArgs = ReadonlyArray<readonly [string, string | number]>

export function encodeSoapRequest(serviceType: string, action: string, args: SoapArgs): string {
  const body = args.map(([name, value]) => `<${name}>${escapeXml(String(value))}</${name}>`).join('')
  return (
    '<?xml version="1.0"?>\r\n' +
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" ' +
    's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">' +
    `<s:Body><u:${action} xmlns:u="${serviceType}">${body}</u:${action}></s:Body></s:Envelope>`
  )
}

/** Reads a SOAP answer: the output arguments on success, `UpnpSoapError` for a fault. */
export function parseSoapResponse(action: string, status: number, body: string): Record<string, string> {
  let envelope
  try {
    envelope = parseXml(body, { maxLength: SOAP_MAX_BYTES })
  } catch (err) {
    if (status !== 200) throw new UpnpHttpError(`UPnP ${action}: HTTP ${status} without a SOAP fault`)
    throw err
  }
  const soapBody = envelope.localName === 'Envelope' ? child(envelope, 'Body') : undefined
  if (soapBody === undefined) refuse(`${action} answer`, 'no SOAP Envelope/Body')
  const fault = child(soapBody, 'Fault')
  if (fault !== undefined) {
    const upnpError = descendants(fault, 'UPnPError')[0]
    const code = upnpError === undefined ? NaN : Number(childText(upnpError, 'errorCode'))
    const description = (upnpError && childText(upnpError, 'errorDescription')) ?? childText(fault, 'faultstring') ?? ''
    throw new UpnpSoapError(action, Number.isInteger(code) ? code : 0, description.slice(0, 200))
  }
  if (status !== 200) throw new UpnpHttpError(`UPnP ${action}: HTTP ${status}`)
  const response = child(soapBody, `${action}Response`)
  if (response === undefined) refuse(`${action} answer`, `no <${action}Response> element`)
  const out: Record<string, string> = {}
  for (const arg of response.children) out[arg.localName] = arg.text.trim()
  return out
}

interface HttpAnswer {
  status: number
  body: string
}

/** One HTTP exchange with a size limit on the answer and a timeout; no connection reuse. */
export function fetchLimited(
  url: string,
  init: {
    method?: string
    headers?: Record<string, string>
    body?: string
    maxBytes: number
    timeoutMs: number
    signal?: AbortSignal
  },
): Promise<HttpAnswer> {
  const target = httpUrl(url, 'request URL')
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      target,
      {
        method: init.method ?? 'GET',
        headers: init.headers,
        agent: false,
        signal: init.signal,
        timeout: init.timeoutMs,
      },
      (res) => {
        const declared = Number(res.headers['content-length'] ?? NaN)
        if (declared > init.maxBytes) {
          req.destroy()
          reject(new NatProtocolError(`answer from ${target.host} is oversized (${declared} bytes)`))
          return
        }
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > init.maxBytes) {
            req.destroy()
            reject(new NatProtocolError(`answer from ${target.host} is oversized (over ${init.maxBytes} bytes)`))
            return
          }
          chunks.push(chunk)
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new UpnpHttpError(`no answer from ${target.host} within ${init.timeoutMs} ms`)))
    req.on('error', (err) => reject(err.name === 'AbortError' ? new AbortError() : err))
    req.end(init.body)
  })
}

/** Fetches a description and returns its WAN connection services (best first). */
export async function fetchServices(
  location: string,
  options: { signal?: AbortSignal; logger?: Logger; timeoutMs?: number } = {},
): Promise<IgdService[]> {
  const log = (options.logger ?? silentLogger()).forComponent('donghae:net:nat')
  const answer = await fetchLimited(location, {
    maxBytes: DESCRIPTION_MAX_BYTES,
    timeoutMs: options.timeoutMs ?? 5000,
    signal: options.signal,
  })
  log.debug({ location, status: answer.status, bytes: answer.body.length, body: answer.body }, 'UPnP description')
  if (answer.status !== 200) throw new UpnpHttpError(`UPnP description ${location}: HTTP ${answer.status}`)
  return parseDescription(answer.body, location)
}

export interface PortMappingEntry {
  internalPort: number
  internalClient: string
  enabled: boolean
  description: string
  leaseSeconds: number
}

export interface AddMappingRequest {
  externalPort: number
  protocol: TransportProtocol
  internalPort: number
  internalClient: string
  description: string
  /** 0 asks for a permanent mapping (IGDv1 routers that answer 725 need it). */
  leaseSeconds: number
}

function parsePort(raw: string | undefined, what: string): number {
  const port = Number(raw)
  if (raw === undefined || !/^[0-9]{1,5}$/.test(raw) || port < 1 || port > 65_535) {
    refuse(`UPnP answer`, `${what} ${JSON.stringify(raw)} is not a port`)
  }
  return port
}

/** One IGD WAN connection service and the actions Donghae uses on it. */
export class UpnpGateway {
  readonly service: IgdService
  readonly #log: Logger
  readonly #timeoutMs: number

  constructor(service: IgdService, options: { logger?: Logger; timeoutMs?: number } = {}) {
    this.service = service
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:net:nat')
    this.#timeoutMs = options.timeoutMs ?? 5000
  }

  get version(): 1 | 2 {
    return this.service.version
  }

  async call(action: string, args: SoapArgs, signal?: AbortSignal): Promise<Record<string, string>> {
    const { serviceType, controlUrl } = this.service
    const answer = await fetchLimited(controlUrl, {
      method: 'POST',
      headers: { 'content-type': 'text/xml; charset="utf-8"', soapaction: `"${serviceType}#${action}"` },
      body: encodeSoapRequest(serviceType, action, args),
      maxBytes: SOAP_MAX_BYTES,
      timeoutMs: this.#timeoutMs,
      signal,
    })
    this.#log.debug({ controlUrl, action, args, status: answer.status, body: answer.body }, 'UPnP answer')
    return parseSoapResponse(action, answer.status, answer.body)
  }

  async externalAddress(signal?: AbortSignal): Promise<string> {
    const out = await this.call('GetExternalIPAddress', [], signal)
    const address = out.NewExternalIPAddress ?? ''
    if (!isIPv4(address) || address === '0.0.0.0') {
      refuse('GetExternalIPAddress answer', `${JSON.stringify(address.slice(0, 40))} is not an IPv4 address`)
    }
    return address
  }

  async addPortMapping(request: AddMappingRequest, signal?: AbortSignal): Promise<void> {
    await this.call('AddPortMapping', this.#mappingArgs(request), signal)
  }

  /** IGDv2: the router picks a free external port near the wanted one; returns it. */
  async addAnyPortMapping(request: AddMappingRequest, signal?: AbortSignal): Promise<number> {
    const out = await this.call('AddAnyPortMapping', this.#mappingArgs(request), signal)
    return parsePort(out.NewReservedPort, 'NewReservedPort')
  }

  /** The mapping on this external port, or undefined when there is none (714). */
  async getSpecificPortMappingEntry(
    externalPort: number,
    protocol: TransportProtocol,
    signal?: AbortSignal,
  ): Promise<PortMappingEntry | undefined> {
    try {
      const out = await this.call('GetSpecificPortMappingEntry', this.#keyArgs(externalPort, protocol), signal)
      const lease = Number(out.NewLeaseDuration ?? '0')
      return {
        internalPort: parsePort(out.NewInternalPort, 'NewInternalPort'),
        internalClient: out.NewInternalClient ?? '',
        enabled: out.NewEnabled === '1' || out.NewEnabled?.toLowerCase() === 'true',
        description: out.NewPortMappingDescription ?? '',
        leaseSeconds: Number.isInteger(lease) && lease >= 0 ? lease : 0,
      }
    } catch (err) {
      if (err instanceof UpnpSoapError && err.upnpCode === 714) return undefined
      throw err
    }
  }

  async deletePortMapping(externalPort: number, protocol: TransportProtocol, signal?: AbortSignal): Promise<void> {
    await this.call('DeletePortMapping', this.#keyArgs(externalPort, protocol), signal)
  }

  #keyArgs(externalPort: number, protocol: TransportProtocol): SoapArgs {
    return [
      ['NewRemoteHost', ''],
      ['NewExternalPort', externalPort],
      ['NewProtocol', protocol.toUpperCase()],
    ]
  }

  #mappingArgs(r: AddMappingRequest): SoapArgs {
    return [
      ...this.#keyArgs(r.externalPort, r.protocol),
      ['NewInternalPort', r.internalPort],
      ['NewInternalClient', r.internalClient],
      ['NewEnabled', 1],
      ['NewPortMappingDescription', r.description],
      ['NewLeaseDuration', r.leaseSeconds],
    ]
  }
}

/** Finds the best IGD service: SSDP, then each answered description until one has a WAN service. */
export async function findGateway(options: DiscoverOptions & { timeoutMs?: number }): Promise<UpnpGateway> {
  const answers = await discoverGateways(options)
  if (answers.length === 0) {
    throw new UpnpNotFoundError(`no UPnP Internet Gateway Device answered SSDP within ${options.timeoutMs ?? 3000} ms`)
  }
  const locations = [...new Set(answers.map((a) => a.location))]
  const errors: string[] = []
  const services: IgdService[] = []
  for (const location of locations) {
    try {
      services.push(...(await fetchServices(location, options)))
    } catch (err) {
      if (err instanceof AbortError) throw err
      errors.push(`${location}: ${(err as Error).message}`)
    }
  }
  services.sort((a, b) => WAN_SERVICES.indexOf(a.serviceType) - WAN_SERVICES.indexOf(b.serviceType))
  const best = services[0]
  if (best === undefined) {
    throw new UpnpNotFoundError(
      `UPnP devices answered but none offers a WAN connection service${errors.length > 0 ? ` (${errors.join('; ')})` : ''}`,
    )
  }
  return new UpnpGateway(best, options)
}

export interface UpnpMapOptions {
  wantedPort: number
  internalPort: number
  protocol: TransportProtocol
  internalClient: string
  leaseSeconds: number
  description: string
  /** IGDv1: how many consecutive external ports to try. @default 10 */
  portTries?: number
  signal?: AbortSignal
}

export interface UpnpMapResult {
  externalPort: number
  /** 0 = permanent (the router only takes permanent leases). */
  leaseSeconds: number
}

function isOurs(entry: PortMappingEntry | undefined, o: UpnpMapOptions): boolean {
  return entry !== undefined && entry.internalClient === o.internalClient && entry.internalPort === o.internalPort
}

async function addOnce(gw: UpnpGateway, req: AddMappingRequest, signal?: AbortSignal): Promise<number> {
  try {
    await gw.addPortMapping(req, signal)
    return req.leaseSeconds
  } catch (err) {
    if (!(err instanceof UpnpSoapError) || err.upnpCode !== 725 || req.leaseSeconds === 0) throw err
    await gw.addPortMapping({ ...req, leaseSeconds: 0 }, signal)
    return 0
  }
}

/**
 * Maps a port: the wanted external port if it is free or already ours; when it is taken,
 * AddAnyPortMapping on IGDv2, else the next ports in turn on IGDv1. A port that holds someone
 * else's mapping is never overwritten (miniupnpd would replace a mapping of the same host).
 */
export async function mapUpnpPort(gw: UpnpGateway, o: UpnpMapOptions): Promise<UpnpMapResult> {
  const tries = o.portTries ?? 10
  let lastError: unknown
  for (let i = 0; i < tries; i++) {
    const port = o.wantedPort + i
    if (port > 65_535) break
    const base: AddMappingRequest = { ...o, externalPort: port }
    let existing: PortMappingEntry | undefined
    try {
      existing = await gw.getSpecificPortMappingEntry(port, o.protocol, o.signal)
    } catch (err) {
      if (!(err instanceof UpnpSoapError)) throw err
      existing = undefined // the router cannot tell; AddPortMapping will say if the port is taken
    }
    const taken = existing !== undefined && !isOurs(existing, o)
    if (!taken) {
      try {
        return { externalPort: port, leaseSeconds: await addOnce(gw, base, o.signal) }
      } catch (err) {
        if (!(err instanceof UpnpSoapError) || (err.upnpCode !== 718 && err.upnpCode !== 729)) throw err
        lastError = err
      }
    }
    if (gw.version === 2) {
      const externalPort = await gw.addAnyPortMapping(base, o.signal)
      return { externalPort, leaseSeconds: o.leaseSeconds }
    }
  }
  throw (
    lastError ??
    new UpnpSoapError('AddPortMapping', 718, `no free external port from ${o.wantedPort} in ${tries} tries`)
  )
}
