/**
 * HTTP as an attacker sends it: any Host and Origin (fetch forbids setting Host), chosen source
 * addresses, and raw sockets that send a request slowly or not at all.
 */
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import { connect, type Socket } from 'node:net'

export interface RawResponse {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

export interface RawRequest {
  method?: string
  path: string
  headers?: Record<string, string>
  body?: string
  /** Source address of the connection (any of 127.0.0.0/8 on Linux). */
  localAddress?: string
}

/**
 * A body's framing: Node's client sends the body of a DELETE (or GET…) without Content-Length
 * unless told, which a server reads as the start of the next request.
 */
function framed(req: RawRequest): Record<string, string> {
  const headers = req.headers ?? {}
  if (req.body === undefined) return headers
  const named = Object.keys(headers).map((h) => h.toLowerCase())
  if (named.includes('content-length') || named.includes('transfer-encoding')) return headers
  return { ...headers, 'content-length': String(Buffer.byteLength(req.body)) }
}

/** Sends one request on a fresh connection and reads the whole answer. */
export function rawRequest(url: string, req: RawRequest): Promise<RawResponse> {
  const target = new URL(url)
  return new Promise((resolve, reject) => {
    const r = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: req.method ?? 'GET',
        path: req.path,
        headers: framed(req),
        agent: false,
        ...(req.localAddress === undefined ? {} : { localAddress: req.localAddress }),
      },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
        res.on('error', reject)
      },
    )
    r.on('error', reject)
    r.end(req.body)
  })
}

/** Opens a request and resolves with the response head, leaving the body streaming (SSE). */
export function openStream(
  url: string,
  req: RawRequest,
): Promise<{ response: IncomingMessage; close: () => Promise<void> }> {
  const target = new URL(url)
  return new Promise((resolve, reject) => {
    const r = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        path: req.path,
        headers: req.headers ?? {},
        agent: false,
        ...(req.localAddress === undefined ? {} : { localAddress: req.localAddress }),
      },
      (response) => {
        const closed = new Promise<void>((done) => response.socket.once('close', () => done()))
        resolve({
          response,
          close: async () => {
            response.destroy()
            await closed
          },
        })
      },
    )
    r.on('error', reject)
    r.end()
  })
}

/** The rest of a response's body (for an answer that ends: not an open event stream). */
export function readBody(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = ''
    response.setEncoding('utf8')
    response.on('data', (c: string) => (body += c))
    response.on('end', () => resolve(body))
    response.on('error', reject)
  })
}

/** A raw TCP connection that records everything the server sends, and when it closes. */
export async function rawSocket(
  url: string,
): Promise<{ socket: Socket; received: () => string; closed: Promise<number> }> {
  const target = new URL(url)
  const socket = connect({ host: target.hostname, port: Number(target.port) })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  const opened = performance.now()
  let data = ''
  socket.setEncoding('utf8')
  socket.on('data', (c: string) => (data += c))
  socket.on('error', () => {}) // a reset by the server is the outcome under test, not a failure
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - opened)))
  return { socket, received: () => data, closed }
}

/** Body of a 4xx/5xx answer as the API's error shape. */
export function errorOf(res: RawResponse): { code: string; message: string; reason?: string } {
  return (JSON.parse(res.body) as { error: { code: string; message: string; reason?: string } }).error
}
