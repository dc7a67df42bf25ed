/**
 * Text that came from someone else (a peer's error message, a remote node's error answer) made
 * safe to put in an API answer, a log line or a terminal: control characters (C0, DEL, C1: the
 * ANSI escapes that repaint a terminal, the newlines that forge log lines) and the bidirectional
 * overrides that reorder what a reader sees become a space, lone surrogates become U+FFFD, and
 * the result is cut to a bounded length with a note of how much was dropped.
 *
 *   untrustedText('\u001b[2J\nFAKE: all good', 40)   // ' [2J FAKE: all good'
 *
 * Browser-safe (no Node imports): the API client uses it too.
 */

/**
 * Longest text kept from a peer, in UTF-16 code units (cut on a code point boundary).
 * @default 200
 */
export const MAX_UNTRUSTED_TEXT = 200

// C0 controls, DEL, C1 controls; the bidi embeddings, overrides and isolates (U+202A-202E,
// U+2066-2069); line and paragraph separators (U+2028, U+2029).
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g

/** `value` as one bounded line of printable text (anything not a string becomes its String()). */
export function untrustedText(value: unknown, maxLength = MAX_UNTRUSTED_TEXT): string {
  const raw = typeof value === 'string' ? value : String(value)
  // Work on a prefix only: a 16 MiB message costs no more than a short one.
  const head = raw.length > maxLength + 1 ? raw.slice(0, maxLength + 1) : raw
  const clean = head.replace(LONE_SURROGATE, '\ufffd').replace(UNSAFE, ' ')
  if (raw.length <= maxLength) return clean
  let cut = clean.slice(0, maxLength)
  // Do not split a surrogate pair at the cut.
  if (/[\ud800-\udbff]$/.test(cut)) cut = cut.slice(0, -1)
  return `${cut}\u2026 (${raw.length - cut.length} more characters cut)`
}
