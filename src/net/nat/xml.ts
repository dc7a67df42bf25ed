/**
 * A small, strict XML reader for UPnP device descriptions and SOAP envelopes. It reads
 * elements, attributes, text, CDATA, comments and the five predefined entities plus numeric
 * character references, and nothing more: a DOCTYPE (and so any entity definition) is refused,
 * as are mismatched tags, unknown entities and input past the size, depth or element limits.
 * Namespace prefixes are kept in `name` and stripped in `localName`; UPnP is matched on
 * local names because routers pick their own prefixes.
 */
import { NatProtocolError } from './errors.ts'

export interface XmlElement {
  /** The qualified name as written (`s:Envelope`). */
  name: string
  /** The name without its prefix (`Envelope`). */
  localName: string
  attributes: Record<string, string>
  children: XmlElement[]
  /** The element's own text (text and CDATA directly inside it), entities decoded, not trimmed. */
  text: string
}

export interface XmlLimits {
  /** Characters of input. @default 65536 */
  maxLength?: number
  /** Nesting depth. @default 32 */
  maxDepth?: number
  /** Elements in the document. @default 4096 */
  maxElements?: number
}

const NAME = /^[A-Za-z_][A-Za-z0-9._:-]*/
const ATTRIBUTE = /^([A-Za-z_][A-Za-z0-9._:-]*)\s*=\s*(?:"([^"<]*)"|'([^'<]*)')/
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" }

function fail(reason: string): never {
  throw new NatProtocolError(`malformed XML from the router: ${reason}`)
}

/** Replaces entity and character references; refuses unknown ones. */
export function decodeEntities(text: string): string {
  if (!text.includes('&')) return text
  return text.replace(/&([^;&\s]{0,12});?/g, (whole, body: string) => {
    if (!whole.endsWith(';')) fail(`unterminated reference ${JSON.stringify(whole)}`)
    const named = PREDEFINED[body]
    if (named !== undefined) return named
    const numeric = /^#(?:x([0-9A-Fa-f]{1,6})|([0-9]{1,7}))$/.exec(body)
    if (numeric === null) fail(`unknown entity &${body};`)
    const code = numeric[1] !== undefined ? parseInt(numeric[1], 16) : Number(numeric[2])
    const allowed =
      code === 0x9 ||
      code === 0xa ||
      code === 0xd ||
      (code >= 0x20 && code <= 0xd7ff) ||
      (code >= 0xe000 && code <= 0x10ffff)
    if (!allowed || (code >= 0xfffe && code <= 0xffff)) fail(`invalid character reference &${body};`)
    return String.fromCodePoint(code)
  })
}

function localNameOf(name: string): string {
  const colon = name.lastIndexOf(':')
  return colon < 0 ? name : name.slice(colon + 1)
}

interface ParserState {
  input: string
  pos: number
  stack: XmlElement[]
  root: XmlElement | undefined
  elements: number
  limits: Required<XmlLimits>
}

function skipPast(state: ParserState, terminator: string, what: string): string {
  const end = state.input.indexOf(terminator, state.pos)
  if (end < 0) fail(`unterminated ${what}`)
  const body = state.input.slice(state.pos, end)
  state.pos = end + terminator.length
  return body
}

function addText(state: ParserState, text: string): void {
  const top = state.stack.at(-1)
  if (top === undefined) {
    if (text.trim() !== '') fail('text outside the root element')
    return
  }
  top.text += text
}

function readAttributes(state: ParserState): { attributes: Record<string, string>; selfClosing: boolean } {
  const attributes: Record<string, string> = {}
  for (;;) {
    const rest = state.input.slice(state.pos, state.pos + 2048)
    const space = /^\s*/.exec(rest)?.[0].length ?? 0
    state.pos += space
    if (state.input.startsWith('/>', state.pos)) {
      state.pos += 2
      return { attributes, selfClosing: true }
    }
    if (state.input.startsWith('>', state.pos)) {
      state.pos += 1
      return { attributes, selfClosing: false }
    }
    const match = ATTRIBUTE.exec(rest.slice(space))
    if (match === null || space === 0) fail(`bad attribute at offset ${state.pos}`)
    const name = match[1] as string
    if (Object.hasOwn(attributes, name)) fail(`duplicate attribute ${name}`)
    attributes[name] = decodeEntities(match[2] ?? match[3] ?? '')
    state.pos += match[0].length
  }
}

function openElement(state: ParserState): void {
  const match = NAME.exec(state.input.slice(state.pos + 1, state.pos + 257))
  if (match === null) fail(`bad tag at offset ${state.pos}`)
  const name = match[0]
  state.pos += 1 + name.length
  const { attributes, selfClosing } = readAttributes(state)
  if (++state.elements > state.limits.maxElements) fail(`more than ${state.limits.maxElements} elements`)
  const element: XmlElement = { name, localName: localNameOf(name), attributes, children: [], text: '' }
  const parent = state.stack.at(-1)
  if (parent === undefined) {
    if (state.root !== undefined) fail('more than one root element')
    state.root = element
  } else parent.children.push(element)
  if (selfClosing) return
  state.stack.push(element)
  if (state.stack.length > state.limits.maxDepth) fail(`nesting deeper than ${state.limits.maxDepth}`)
}

function closeElement(state: ParserState): void {
  const match = /^<\/([A-Za-z_][A-Za-z0-9._:-]*)\s*>/.exec(state.input.slice(state.pos, state.pos + 300))
  if (match === null) fail(`bad closing tag at offset ${state.pos}`)
  const open = state.stack.pop()
  if (open === undefined || open.name !== match[1]) fail(`closing tag </${match[1]}> does not match`)
  state.pos += match[0].length
}

function readMarkup(state: ParserState): void {
  const { input } = state
  if (input.startsWith('<?', state.pos)) {
    state.pos += 2
    skipPast(state, '?>', 'processing instruction')
  } else if (input.startsWith('<!--', state.pos)) {
    state.pos += 4
    skipPast(state, '-->', 'comment')
  } else if (input.startsWith('<![CDATA[', state.pos)) {
    if (state.stack.length === 0) fail('CDATA outside the root element')
    state.pos += 9
    addText(state, skipPast(state, ']]>', 'CDATA section'))
  } else if (input.startsWith('<!', state.pos)) {
    fail('DOCTYPE and other declarations are not accepted')
  } else if (input.startsWith('</', state.pos)) {
    closeElement(state)
  } else {
    openElement(state)
  }
}

/** Parses a whole document and returns its root element; throws `NatProtocolError` on anything else. */
export function parseXml(input: string, limits: XmlLimits = {}): XmlElement {
  const state: ParserState = {
    input: input.startsWith('\uFEFF') ? input.slice(1) : input,
    pos: 0,
    stack: [],
    root: undefined,
    elements: 0,
    limits: { maxLength: 65_536, maxDepth: 32, maxElements: 4096, ...limits },
  }
  if (state.input.length > state.limits.maxLength) fail(`document longer than ${state.limits.maxLength} characters`)
  while (state.pos < state.input.length) {
    const lt = state.input.indexOf('<', state.pos)
    const end = lt < 0 ? state.input.length : lt
    if (end > state.pos) {
      const raw = state.input.slice(state.pos, end)
      addText(state, decodeEntities(raw))
      state.pos = end
    }
    if (lt < 0) break
    if (state.root !== undefined && state.stack.length === 0 && !/^<(\?|!--)/.test(state.input.slice(lt, lt + 4))) {
      fail('content after the root element')
    }
    readMarkup(state)
  }
  if (state.stack.length > 0) fail(`element <${state.stack.at(-1)?.name ?? ''}> is not closed`)
  if (state.root === undefined) fail('no root element')
  return state.root
}

/** The first direct child with this local name. */
export function child(element: XmlElement, localName: string): XmlElement | undefined {
  return element.children.find((c) => c.localName === localName)
}

/** The trimmed text of the first direct child with this local name. */
export function childText(element: XmlElement, localName: string): string | undefined {
  return child(element, localName)?.text.trim()
}

/** Every descendant (depth first, document order) with this local name. */
export function descendants(element: XmlElement, localName: string): XmlElement[] {
  const found: XmlElement[] = []
  const walk = (el: XmlElement): void => {
    for (const c of el.children) {
      if (c.localName === localName) found.push(c)
      walk(c)
    }
  }
  walk(element)
  return found
}
