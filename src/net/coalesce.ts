/**
 * TCP writes, coalesced per turn of the event loop.
 *
 * libp2p's TCP connection hands the socket every chunk it is given as a `socket.write` of its
 * own, and with Nagle off (libp2p sets `noDelay`) each becomes a syscall and a TCP segment. One
 * small message on a stream is four of them: yamux sends a frame's 12-byte header and its body
 * as two sends, and noise writes each as a 2-byte length and a ciphertext. On an idle devnet
 * node that was most of its socket traffic: about 20 segments a second on each connection, half
 * of them 2 bytes long (docs/performance.md, "Writes, streams and adverts").
 *
 * `coalescedTcp` is libp2p's TCP transport whose connections cork their socket on the first
 * write of a turn and uncork it on the next tick (Node's documented pattern for batching
 * writes): whatever the stack writes in one synchronous run leaves in one `writev`. Backpressure
 * is unchanged (`socket.write` still says when the buffer is full; the buffered bytes leave at
 * the uncork), and nothing waits longer than the current turn.
 */
import { Socket } from 'node:net'
import { tcp, type TCPOptions } from '@libp2p/tcp'
import type { MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'

type TcpComponents = Parameters<ReturnType<typeof tcp>>[0]

/** libp2p's TCP transport with its connections' writes coalesced (see the file's comment). */
export function coalescedTcp(init?: TCPOptions): (components: TcpComponents) => Transport {
  const factory = tcp(init)
  return (components) => {
    const transport = factory(components)
    const dial = transport.dial.bind(transport)
    const createListener = transport.createListener.bind(transport)
    transport.dial = (ma, options) => dial(ma, { ...options, upgrader: corking(options.upgrader) })
    transport.createListener = (options) => createListener({ ...options, upgrader: corking(options.upgrader) })
    return transport
  }
}

/** The upgrader, with each raw connection's writes coalesced before it is upgraded. */
function corking(upgrader: Upgrader): Upgrader {
  return new Proxy(upgrader, {
    get(target, property) {
      if (property === 'upgradeInbound' || property === 'upgradeOutbound') {
        const upgrade = target[property].bind(target) as (maConn: MultiaddrConnection, opts: unknown) => unknown
        return (maConn: MultiaddrConnection, opts: unknown) => {
          coalesceWrites(maConn)
          return upgrade(maConn, opts)
        }
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
}

/**
 * Corks the connection's socket on its first send of a turn and uncorks it on the next tick.
 * Does nothing to a connection that is not a Node socket's (another transport's shape).
 */
export function coalesceWrites(maConn: MultiaddrConnection): void {
  const conn = maConn as MultiaddrConnection & { socket?: unknown; sendData?: (data: unknown) => unknown }
  const socket = conn.socket
  const sendData = conn.sendData
  if (!(socket instanceof Socket) || typeof sendData !== 'function') return
  let corked = false
  const uncork = (): void => {
    corked = false
    socket.uncork()
  }
  conn.sendData = (data: unknown) => {
    if (!corked && !socket.destroyed) {
      corked = true
      socket.cork()
      process.nextTick(uncork)
    }
    return sendData.call(conn, data)
  }
}
