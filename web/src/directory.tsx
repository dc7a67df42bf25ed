// Directory: find a node in the DID directory (text and category), open a WebRTC data channel to
// it from this browser (an offer signed by this tab's key, the answer checked against the DID the
// entry names, the DTLS certificate against the signed answer), and chat with its language model
// over that channel, the answer streaming in token by token. Nothing passes through this node
// once the channel is open: the search is this node's, the conversation is with the other one.
import { useEffect, useRef, useState } from 'preact/hooks'
import { ApiError, type DirectoryEntryView } from '../../src/api/client.ts'
import type { NodeLive } from './live.ts'
import { errorText } from './format.ts'
import { Badge, Button, Card, Field, Notice, Short, Table } from './ui.tsx'
import {
  connect,
  requestChat,
  requestInfo,
  WebRtcClientError,
  type CertificateCheck,
  type ChatAnswer,
  type ConnectPhase,
  type PeerInfo,
  type WebRtcSession,
} from './webrtc-client.ts'

const PHASE_TEXT: Readonly<Record<ConnectPhase, string>> = {
  gathering: 'gathering this browser’s addresses…',
  signalling: 'sending the signed offer…',
  verifying: 'checking the signed answer…',
  connecting: 'opening the data channel…',
  open: 'open',
}

const CHECK_TEXT: Readonly<Record<CertificateCheck, string>> = {
  certificate: 'the DTLS certificate the handshake used is the one the DID signed (checked here)',
  stats: 'the DTLS certificate in the connection’s stats is the one the DID signed (checked here)',
  sdp: 'the browser holds the DTLS certificate to the signed SDP’s fingerprint (not exposed to check again)',
}

type Link =
  | { state: 'idle' }
  | { state: 'connecting'; entry: DirectoryEntryView; phase: ConnectPhase }
  | { state: 'open'; entry: DirectoryEntryView; session: WebRtcSession; info: PeerInfo | undefined }
  | { state: 'failed'; entry: DirectoryEntryView; reason: string }
  | { state: 'closed'; entry: DirectoryEntryView }

function reasonOf(err: unknown): string {
  return err instanceof WebRtcClientError ? `${err.message} (${err.code})` : errorText(err)
}

function Search(props: { live: NodeLive; busyDid: string | undefined; onConnect: (e: DirectoryEntryView) => void }) {
  const [query, setQuery] = useState('')
  const [category, setCategory] = useState('')
  const [entries, setEntries] = useState<DirectoryEntryView[] | undefined>(undefined)
  const [error, setError] = useState<unknown>(undefined)
  const [busy, setBusy] = useState(false)
  const run = async (signal?: AbortSignal): Promise<void> => {
    setBusy(true)
    try {
      const q = query.trim()
      const c = category.trim().toLowerCase()
      const page = await props.live.client.directorySearch(
        { ...(q === '' ? {} : { query: q }), ...(c === '' ? {} : { category: c }), limit: 50 },
        signal === undefined ? {} : { signal },
      )
      setEntries(page.entries)
      setError(undefined)
    } catch (err) {
      if (signal?.aborted !== true) setError(err)
    } finally {
      setBusy(false)
    }
  }
  useEffect(() => {
    const abort = new AbortController()
    void run(abort.signal)
    return () => abort.abort()
  }, [])
  if (error instanceof ApiError && error.status === 404 && entries === undefined)
    return <Notice tone="warn">This node keeps no DID directory: start it with directory=true to search here.</Notice>
  const categories = [...new Set((entries ?? []).flatMap((e) => e.categories))].sort()
  return (
    <Card title="Find a node" wide>
      <form
        class="row"
        role="search"
        onSubmit={(e) => {
          e.preventDefault()
          void run()
        }}
      >
        <Field label="Search">
          <input
            name="query"
            type="search"
            data-testid="directory-query"
            placeholder="restaurant, translator, llm…"
            value={query}
            onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
          />
        </Field>
        <Field label="Category">
          <input
            name="category"
            list="directory-categories"
            data-testid="directory-category"
            placeholder="any"
            value={category}
            onInput={(e) => setCategory((e.target as HTMLInputElement).value)}
          />
        </Field>
        <datalist id="directory-categories">
          {categories.map((c) => (
            <option key={c} value={c} />
          ))}
        </datalist>
        <button type="submit" class="button" disabled={busy} data-testid="directory-search">
          {busy ? '…' : 'Search'}
        </button>
      </form>
      {error === undefined ? null : <Notice tone="bad">{errorText(error)}</Notice>}
      {entries === undefined ? (
        <p class="empty">Searching…</p>
      ) : (
        <Table
          testId="directory-results"
          rows={entries}
          rowKey={(e) => e.did}
          empty="No entry matches."
          columns={[
            { label: 'description', render: (e) => e.description },
            {
              label: 'categories',
              render: (e) => (
                <span class="labels">
                  {e.categories.map((c) => (
                    <Badge key={c} tone="neutral">
                      {c}
                    </Badge>
                  ))}
                </span>
              ),
            },
            { label: 'DID', render: (e) => <Short text={e.did} head={14} /> },
            { label: 'endpoint', render: (e) => <code class="endpoint">{e.endpoint}</code> },
            {
              label: '',
              render: (e) => (
                <Button
                  data-testid="directory-connect"
                  data-did={e.did}
                  aria-label={`Connect to ${e.did}`}
                  busy={props.busyDid === e.did}
                  onClick={() => props.onConnect(e)}
                >
                  Connect
                </Button>
              ),
            },
          ]}
        />
      )}
    </Card>
  )
}

function Status(props: { link: Exclude<Link, { state: 'idle' }> }) {
  const { link } = props
  return (
    <div class="stack" style={{ marginBottom: '1rem' }} data-testid="webrtc-status" data-state={link.state}>
      {link.state === 'connecting' ? (
        <Notice tone="neutral">Connecting: {PHASE_TEXT[link.phase]}</Notice>
      ) : link.state === 'failed' ? (
        <Notice tone="bad" testId="webrtc-failed">
          Could not connect: {link.reason}
        </Notice>
      ) : link.state === 'closed' ? (
        <Notice tone="warn" testId="webrtc-closed">
          The connection closed.
        </Notice>
      ) : null}
      <dl class="facts">
        <dt>peer</dt>
        <dd>
          <code class="did" data-testid="webrtc-peer-did">
            {link.entry.did}
          </code>{' '}
          {link.state === 'open' ? (
            <Badge tone="ok" testId="webrtc-verified">
              ✓ verified DID
            </Badge>
          ) : null}
        </dd>
        <dt>about</dt>
        <dd>{link.entry.description}</dd>
        {link.state === 'open' ? (
          <>
            <dt>certificate</dt>
            <dd data-testid="webrtc-check" data-check={link.session.certificateCheck}>
              {CHECK_TEXT[link.session.certificateCheck]}
            </dd>
            <dt>fingerprint</dt>
            <dd>
              <Short text={link.session.fingerprint} head={17} tail={8} />
            </dd>
            <dt>this tab</dt>
            <dd>
              <Short text={link.session.localDid} head={20} /> <span class="muted">(a key made for this tab)</span>
            </dd>
            <dt>models</dt>
            <dd data-testid="webrtc-models">
              {link.info === undefined ? '…' : link.info.models.map((m) => m.name).join(', ') || 'none'}
            </dd>
          </>
        ) : null}
      </dl>
    </div>
  )
}

function Chat(props: { session: WebRtcSession; info: PeerInfo | undefined }) {
  const models = props.info?.models ?? []
  const [model, setModel] = useState('')
  const [prompt, setPrompt] = useState('')
  const [maxTokens, setMaxTokens] = useState('48')
  const [temperature, setTemperature] = useState('0')
  const [answer, setAnswer] = useState('')
  const [pieces, setPieces] = useState(0)
  const [result, setResult] = useState<(ChatAnswer & { ms: number; firstMs: number | undefined }) | undefined>()
  const [error, setError] = useState<string | undefined>(undefined)
  const [busy, setBusy] = useState(false)
  const running = useRef<AbortController | null>(null)
  const send = async (): Promise<void> => {
    const max = Number(maxTokens)
    const temp = Number(temperature)
    if (prompt.trim() === '') return setError('Write a message first.')
    if (!Number.isInteger(max) || max < 1) return setError('Max tokens is a whole number from 1.')
    if (!Number.isFinite(temp) || temp < 0 || temp > 5) return setError('Temperature is a number from 0 to 5.')
    const abort = new AbortController()
    running.current = abort
    setError(undefined)
    setResult(undefined)
    setAnswer('')
    setPieces(0)
    setBusy(true)
    const started = performance.now()
    let firstMs: number | undefined
    let text = ''
    let count = 0
    try {
      const out = await requestChat(
        props.session.client,
        {
          ...(model === '' ? {} : { model }),
          messages: [{ role: 'user', content: prompt }],
          max_tokens: max,
          temperature: temp,
        },
        {
          signal: abort.signal,
          onToken: (token) => {
            firstMs ??= performance.now() - started
            text += token
            setAnswer(text)
            setPieces(++count)
          },
        },
      )
      setAnswer(out.text)
      setResult({ ...out, ms: performance.now() - started, firstMs })
    } catch (err) {
      if (!abort.signal.aborted) setError(reasonOf(err))
    } finally {
      running.current = null
      setBusy(false)
    }
  }
  return (
    <div class="run">
      <div class="run-input">
        {models.length > 1 ? (
          <Field label="Model">
            <select value={model} onChange={(e) => setModel((e.target as HTMLSelectElement).value)}>
              <option value="">{models[0]?.name} (default)</option>
              {models.slice(1).map((m) => (
                <option key={m.name} value={m.name}>
                  {m.name}
                </option>
              ))}
            </select>
          </Field>
        ) : null}
        <Field label="Message">
          <textarea
            name="webrtc-prompt"
            data-testid="webrtc-prompt"
            rows={3}
            placeholder="Is there a table for two tonight?"
            value={prompt}
            onInput={(e) => setPrompt((e.target as HTMLTextAreaElement).value)}
          />
        </Field>
        <div class="row">
          <Field label="Temperature">
            <input
              name="webrtc-temperature"
              inputMode="decimal"
              value={temperature}
              onInput={(e) => setTemperature((e.target as HTMLInputElement).value)}
            />
          </Field>
          <Field label="Max tokens">
            <input
              name="webrtc-max-tokens"
              inputMode="numeric"
              value={maxTokens}
              onInput={(e) => setMaxTokens((e.target as HTMLInputElement).value)}
            />
          </Field>
        </div>
        <div class="row">
          <Button onClick={() => void send()} busy={busy} data-testid="webrtc-send">
            Send
          </Button>
          {busy ? (
            <button type="button" class="button secondary" onClick={() => running.current?.abort()}>
              Stop
            </button>
          ) : null}
        </div>
      </div>
      <div class="run-output">
        {error === undefined ? null : (
          <Notice tone="bad" testId="webrtc-chat-error">
            {error}
          </Notice>
        )}
        {answer === '' && !busy ? (
          <p class="empty">The answer streams in here over the data channel.</p>
        ) : (
          <p class="chat-answer" data-testid="webrtc-answer" aria-live="polite">
            {answer}
            {busy ? <span class="caret" aria-hidden="true" /> : null}
          </p>
        )}
        {answer === '' && !busy ? null : (
          <p class="muted" data-testid="webrtc-pieces" data-count={pieces}>
            {pieces} streamed {pieces === 1 ? 'piece' : 'pieces'}
          </p>
        )}
        {result === undefined ? null : (
          <dl class="facts" data-testid="webrtc-result">
            <dt>model</dt>
            <dd data-testid="webrtc-model">{result.model}</dd>
            <dt>tokens</dt>
            <dd data-testid="webrtc-usage">
              {result.promptTokens} prompt + {result.completionTokens} completion ({result.finishReason})
            </dd>
            <dt>time</dt>
            <dd>
              {result.firstMs === undefined ? '' : `first token ${Math.round(result.firstMs)} ms · `}
              {Math.round(result.ms)} ms in all
            </dd>
          </dl>
        )}
      </div>
    </div>
  )
}

export function Directory(props: { live: NodeLive }) {
  const [link, setLink] = useState<Link>({ state: 'idle' })
  const attempt = useRef<AbortController | null>(null)
  const current = useRef<WebRtcSession | null>(null)
  const hangUp = (): void => {
    attempt.current?.abort()
    attempt.current = null
    void current.current?.close()
    current.current = null
  }
  useEffect(() => hangUp, [])
  const open = async (entry: DirectoryEntryView): Promise<void> => {
    hangUp()
    const abort = new AbortController()
    attempt.current = abort
    setLink({ state: 'connecting', entry, phase: 'gathering' })
    try {
      const session = await connect({
        endpoint: entry.endpoint,
        did: entry.did,
        signal: abort.signal,
        onPhase: (phase) => !abort.signal.aborted && setLink({ state: 'connecting', entry, phase }),
      })
      if (abort.signal.aborted) return void session.close()
      attempt.current = null
      current.current = session
      setLink({ state: 'open', entry, session, info: undefined })
      void session.closed.then(() => {
        if (current.current !== session) return
        current.current = null
        setLink({ state: 'closed', entry })
      })
      const info = await requestInfo(session.client, { timeoutMs: 15_000 }).catch(() => undefined)
      if (current.current === session) setLink({ state: 'open', entry, session, info })
    } catch (err) {
      if (!abort.signal.aborted) setLink({ state: 'failed', entry, reason: reasonOf(err) })
    }
  }
  const close = (): void => {
    const entry = link.state === 'idle' ? undefined : link.entry
    hangUp()
    setLink(entry === undefined ? { state: 'idle' } : { state: 'closed', entry })
  }
  return (
    <div class="grid">
      <Search
        live={props.live}
        busyDid={link.state === 'connecting' ? link.entry.did : undefined}
        onConnect={(entry) => void open(entry)}
      />
      {link.state === 'idle' ? null : (
        <Card
          title="Direct connection"
          wide
          actions={
            link.state === 'open' || link.state === 'connecting' ? (
              <button type="button" class="button secondary" data-testid="webrtc-disconnect" onClick={close}>
                Disconnect
              </button>
            ) : null
          }
        >
          <Status link={link} />
          {link.state === 'open' ? <Chat session={link.session} info={link.info} /> : null}
        </Card>
      )}
    </div>
  )
}
