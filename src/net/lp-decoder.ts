/**
 * No new error at the end of every chunk a connection reads.
 *
 * libp2p's `LengthPrefixedDecoder` (`@libp2p/utils`; Noise decrypts every connection's frames
 * through one) takes frames off its buffer until its length decoder throws a `RangeError` for a
 * prefix it does not have yet, and catches that. Nearly every chunk a socket delivers ends on a
 * frame boundary, so nearly every chunk ended in a fresh `RangeError` and its stack trace: 2.9 %
 * of a validator's main thread and 1.9 % of a gateway's under the inference bench
 * (docs/performance.md, "Audits that asked the silent").
 *
 * The decoder is built inside the connection encrypter, so the change goes on its prototype,
 * once, before the first connection: at its first `decode`, each decoder's length decoder is
 * wrapped so that an empty buffer throws one `RangeError` made here (no stack trace captured per
 * chunk), which the decoder catches as before; a buffer holding part of a prefix still goes to
 * the original length decoder, and every frame comes out as before. A release without
 * `decode` on the prototype makes `createHost` fail (ConfigError); one that renamed the
 * `lengthDecoder` field gets the decoder as shipped, and test/net-lp-decoder.test.ts, which
 * counts the errors over real connections, fails.
 */
import { LengthPrefixedDecoder } from '@libp2p/utils'
import { ConfigError } from '../core/errors.ts'

/** What the decoder buffers (a Uint8ArrayList) or is given; only its length is read here. */
type Chunk = Uint8Array | { readonly byteLength: number }
type LengthDecoder = (data: Chunk) => number

/** The field the change wraps (private in the decoder's types, a plain field in its code). */
interface DecoderFields {
  lengthDecoder?: LengthDecoder
  [QUIET]?: true
}

/** Thrown for every empty buffer: made once, so no stack trace is captured per chunk. */
const NO_PREFIX_YET = new RangeError('no length prefix in an empty buffer')
const QUIET = Symbol('donghae.quietLengthDecoder')
let installed = false

/** Wraps a length decoder so that an empty buffer throws the shared error (exported for tests). */
export function quietLengthDecoder(inner: LengthDecoder): LengthDecoder {
  return (data) => {
    if (data.byteLength === 0) throw NO_PREFIX_YET
    return inner(data)
  }
}

/** Installs the change on every `LengthPrefixedDecoder` of this process (idempotent). */
export function quietLengthPrefixes(): void {
  if (installed) return
  const proto = LengthPrefixedDecoder.prototype as unknown as { decode?: unknown }
  const decode = proto.decode
  if (typeof decode !== 'function')
    throw new ConfigError('this @libp2p/utils has no LengthPrefixedDecoder.decode (src/net/lp-decoder.ts)')
  proto.decode = function (this: DecoderFields, buf: Chunk) {
    if (this[QUIET] !== true) {
      this[QUIET] = true
      const inner = this.lengthDecoder
      if (typeof inner === 'function') this.lengthDecoder = quietLengthDecoder(inner)
    }
    return (decode as (this: DecoderFields, buf: Chunk) => unknown).call(this, buf)
  }
  installed = true
}
