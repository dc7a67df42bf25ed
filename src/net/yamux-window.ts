/**
 * Yamux window updates once half the receive window is used, as the Go and Rust implementations
 * send them, instead of after every data frame.
 *
 * A yamux receiver tells the sender how much more it may send (a WINDOW_UPDATE frame). libp2p's
 * JavaScript yamux (`@chainsafe/libp2p-yamux`) sends one after every data frame it receives, so
 * every message on a long-lived stream (gossip, a worker's session) costs a second frame going
 * back: a Noise encryption, a socket write and, at the other end, a read, a decryption and a
 * frame to handle. On an idle devnet node these updates were about half of all its socket
 * writes (docs/performance.md, "Window updates"). hashicorp/yamux and go-yamux skip an update
 * while less than half the window has been consumed and no flag (SYN, ACK) must be sent; the
 * sender still holds at least half a window of credit then, so nothing waits for it.
 *
 * `YamuxStream` is built inside the muxer, so the rule goes on its prototype, once, before the
 * first stream: `sendWindowUpdate` keeps its own behaviour (flags, pausing, the window's growth)
 * and is only not called while no update is due. A yamux release without that method makes
 * `createHost` fail (ConfigError: the rule cannot be installed, and a node would not start with a
 * muxer it was not tested with); one that renamed the two window fields the rule reads gets
 * yamux's own behaviour, stream by stream, and test/net-yamux-window.test.ts, which counts the
 * updates, fails.
 */
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { ConfigError } from '../core/errors.ts'

/** The fields of a stream the rule reads (private in yamux's types, plain fields in its code). */
interface WindowFields {
  state: StreamState
  recvWindow: number
  recvWindowCapacity: number
}

let installed = false

/**
 * Whether a stream's window update is due: always, unless it is established (no SYN or ACK to
 * send, not paused) and has consumed less than half of its receive window since the last one.
 */
export function windowUpdateDue(stream: WindowFields): boolean {
  if (typeof stream.recvWindow !== 'number' || typeof stream.recvWindowCapacity !== 'number') return true
  if (stream.state !== StreamState.SYNSent && stream.state !== StreamState.Established) return true
  return stream.recvWindowCapacity * 2 <= stream.recvWindow
}

/** Installs the rule on every yamux stream of this process (idempotent). */
export function halfWindowUpdates(): void {
  if (installed) return
  const proto = YamuxStream.prototype as unknown as { sendWindowUpdate?: unknown }
  const original = proto.sendWindowUpdate
  if (typeof original !== 'function') {
    throw new ConfigError('this @chainsafe/libp2p-yamux has no YamuxStream.sendWindowUpdate (src/net/yamux-window.ts)')
  }
  proto.sendWindowUpdate = function (this: WindowFields) {
    if (windowUpdateDue(this)) (original as (this: WindowFields) => void).call(this)
  }
  installed = true
}
