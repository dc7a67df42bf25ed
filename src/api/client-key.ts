/**
 * The key a per-client rate limit charges: the client's IP address, with an IPv6 address cut to
 * its /64. One IPv6 subscriber usually holds a whole /64 (RFC 6177 assigns /48 to /64 per site),
 * so keying by the full address would give a flood 2^64 fresh budgets. IPv4-mapped IPv6
 * addresses (`::ffff:192.0.2.1`, how a dual-stack socket reports an IPv4 client) are keyed as the
 * IPv4 address they carry.
 */
import { isIP } from 'node:net'

/** The eight 16-bit groups of an IPv6 address (`::` expanded, an embedded IPv4 tail converted). */
function ipv6Groups(address: string): number[] {
  const zoneless = address.split('%')[0] ?? address
  let text = zoneless
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text)
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number]
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head = '', tail] = text.split('::')
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)))
  const front = parse(head)
  const back = tail === undefined ? [] : parse(tail)
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back]
}

/** `192.0.2.1` -> `192.0.2.1`; `2001:db8:1:2:aaaa::1` -> `2001:db8:1:2::/64`; anything else as given. */
export function clientKey(address: string): string {
  if (isIP(address) !== 6) return address
  const groups = ipv6Groups(address.toLowerCase())
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff
  if (mapped) {
    const [hi = 0, lo = 0] = groups.slice(6)
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`
}
