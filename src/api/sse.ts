/**
 * A parser for server-sent events (the WHATWG "event stream interpretation"), fed text chunks
 * as they arrive: lines may be split anywhere across chunks and end in LF, CR or CRLF.
 * Browser-safe (no Node imports): the client uses it in Node and in the dashboard.
 */

export interface SseMessage {
  /** The `event:` field, 'message' when absent. */
  event: string
  data: string
  /** The last `id:` seen on the stream (it carries over to later messages, as the spec says). */
  id: string | undefined
}

export class SseParser {
  #buffer = ''
  #data: string[] = []
  #event = ''
  #id: string | undefined
  #sawCr = false
  /** The last `retry:` value, in milliseconds. */
  retryMs: number | undefined

  /** Feeds a chunk; returns the messages it completed. */
  push(chunk: string): SseMessage[] {
    if (chunk === '') return []
    let text = chunk
    // A CR at the end of the previous chunk may be the first half of a CRLF.
    if (this.#sawCr && text.startsWith('\n')) text = text.slice(1)
    this.#sawCr = chunk.endsWith('\r')
    this.#buffer += text
    const messages: SseMessage[] = []
    const lines = this.#buffer.split(/\r\n|\r|\n/)
    this.#buffer = lines.pop() ?? ''
    for (const line of lines) {
      const message = this.#line(line)
      if (message !== undefined) messages.push(message)
    }
    return messages
  }

  #line(line: string): SseMessage | undefined {
    if (line === '') return this.#dispatch()
    if (line.startsWith(':')) return undefined
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'data') this.#data.push(value)
    else if (field === 'event') this.#event = value
    else if (field === 'id' && !value.includes('\0')) this.#id = value
    else if (field === 'retry' && /^[0-9]+$/.test(value)) this.retryMs = Number(value)
    return undefined
  }

  #dispatch(): SseMessage | undefined {
    const data = this.#data
    const event = this.#event
    this.#data = []
    this.#event = ''
    if (data.length === 0) return undefined
    return { event: event === '' ? 'message' : event, data: data.join('\n'), id: this.#id }
  }
}
