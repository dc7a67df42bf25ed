// Wallet: the node's own payments (issue 14). The balance and what is still pending; a send form
// (the recipient by DID, or picked from this node's DID directory) whose amount, memo and invoice
// travel sealed to the recipient, only the value and the envelope's hash on chain; the history,
// newest first, with the memos the node decrypted; the envelopes still on their way (direct tries,
// mailbox peers); and a check of the local ledger's hash chain. Every call is an operator route
// (src/api/wallet-api.ts): nothing here is shown without the operator token. Laid out as cards,
// so that it fits a phone: the dashboard installs as an app (public/manifest.webmanifest).
import { useEffect, useRef, useState } from 'preact/hooks'
import { ApiError, type DirectoryEntryView } from '../../src/api/client.ts'
import type {
  DeliveryView,
  LedgerVerification,
  WalletPaymentView,
  WalletSendBody,
  WalletSummary,
} from '../../src/api/wallet-api.ts'
import { amount, errorText, size } from './format.ts'
import { useLive, type NodeLive } from './live.ts'
import { usePoll } from './poll.ts'
import { Badge, Button, Card, Field, Notice, Short, Stat, type Tone } from './ui.tsx'

/** Limits of an envelope (src/wallet/envelope.ts), checked here first for a quicker answer. */
const MAX_MEMO_BYTES = 1024
const MAX_INVOICE_BYTES = 48 * 1024
const MAX_INVOICE_NAME_BYTES = 255
const PAGE = 25
const POLL_MS = 4_000
const CALL_TIMEOUT_MS = 60_000
const DID_KEY = /^did:key:z[1-9A-HJ-NP-Za-km-z]{40,}$/

// ---- the wallet routes (an operator's bearer token on every call) --------------------------------

/** An API error whose body carried `details` (the ledger's first bad index, for one). */
class WalletApiError extends ApiError {
  readonly body: Record<string, unknown>
  constructor(status: number, error: Record<string, unknown>) {
    super({
      status,
      code: typeof error.code === 'string' ? error.code.slice(0, 64) : `HTTP_${status}`,
      message: typeof error.message === 'string' ? error.message.slice(0, 1_000) : `the node answered HTTP ${status}`,
      reason: typeof error.reason === 'string' ? error.reason.slice(0, 64) : undefined,
    })
    this.body = error
  }
}

async function walletFetch(
  live: NodeLive,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  signal?: AbortSignal,
): Promise<Response> {
  const token = live.state.token
  const headers: Record<string, string> = { accept: 'application/json' }
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const timeout = AbortSignal.timeout(CALL_TIMEOUT_MS)
  try {
    return await fetch(`${live.client.baseUrl}${path}`, {
      method,
      headers,
      signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
  } catch (err) {
    if (signal?.aborted === true) throw err
    const timedOut = timeout.aborted
    throw new ApiError({
      status: 0,
      code: timedOut ? 'TIMEOUT' : 'UNREACHABLE',
      message: timedOut ? `the node did not answer ${path} in time` : `the node is unreachable (${errorText(err)})`,
      cause: err,
    })
  }
}

async function failure(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '')
  try {
    const error = (JSON.parse(text) as { error?: unknown }).error
    if (typeof error === 'object' && error !== null) return new WalletApiError(response.status, error as never)
  } catch {
    // not JSON: below
  }
  return new ApiError({
    status: response.status,
    code: 'BAD_RESPONSE',
    message: `the node answered HTTP ${response.status} without an error body`,
  })
}

async function call<T>(
  live: NodeLive,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  signal?: AbortSignal,
): Promise<T> {
  const response = await walletFetch(live, method, path, body, signal)
  if (!response.ok) throw await failure(response)
  return (await response.json()) as T
}

interface HistoryPage {
  payments: WalletPaymentView[]
  cursor?: string
}

type Direction = 'all' | 'sent' | 'received'

function historyPath(direction: Direction, cursor?: string): string {
  const params = new URLSearchParams({ limit: String(PAGE) })
  if (direction !== 'all') params.set('direction', direction)
  if (cursor !== undefined) params.set('cursor', cursor)
  return `/v1/operator/wallet/payments?${params.toString()}`
}

/** What a failed wallet call means for the person looking at the page. */
function problem(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 401) return 'The node refused the operator token: set it on the Accounts page.'
    if (err.code === 'WALLET_LOCKED') return 'This node runs without a wallet ledger.'
    if (err.status === 404 && err.code === 'NOT_FOUND' && /no route/.test(err.message))
      return 'This node has no wallet (its software predates it).'
    if (err.code === 'INSUFFICIENT_FUNDS') return `The balance does not cover the amount and the fee: ${err.message}`
  }
  return errorText(err)
}

// ---- small formatting ------------------------------------------------------------------------

const utf8Length = (text: string): number => new TextEncoder().encode(text).length

function shortText(text: string, head = 14, tail = 6): string {
  return text.length > head + tail + 1 ? `${text.slice(0, head)}…${text.slice(-tail)}` : text
}

function until(ms: number, now = Date.now()): string {
  const s = Math.round((ms - now) / 1000)
  if (s <= 0) return 'due now'
  if (s < 120) return `in ${s} s`
  if (s < 7200) return `in ${Math.round(s / 60)} min`
  return `in ${(s / 3600).toFixed(1)} h`
}

function when(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })
}

const STATUS_TONE: Readonly<Record<WalletPaymentView['status'], Tone>> = {
  pending: 'warn',
  committed: 'ok',
  failed: 'bad',
}
const DELIVERY_TONE: Readonly<Record<WalletPaymentView['delivery'], Tone>> = {
  queued: 'neutral',
  stored: 'neutral',
  acknowledged: 'ok',
}

/** Base64 of a file's bytes, in pieces small enough for String.fromCharCode. */
function base64(bytes: Uint8Array): string {
  let text = ''
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(text)
}

// ---- the balance, and the ledger check -------------------------------------------------------

type Verification =
  | { state: 'idle' }
  | { state: 'checking' }
  | { state: 'ok'; result: LedgerVerification }
  | { state: 'tampered'; index: number | undefined; message: string }
  | { state: 'error'; message: string }

function tamperedIndex(err: ApiError): number | undefined {
  const body = err instanceof WalletApiError ? err.body : {}
  const details = body.details as { index?: unknown } | undefined
  // routes/wallet.ts puts it in the error itself; `details.index` is the contract's spelling
  const index = body.index ?? details?.index
  return typeof index === 'number' && Number.isInteger(index) && index >= 0 ? index : undefined
}

function VerifyLedger(props: { live: NodeLive; onDone(): void }) {
  const [v, setV] = useState<Verification>({ state: 'idle' })
  const verify = async (): Promise<void> => {
    setV({ state: 'checking' })
    try {
      const result = await call<LedgerVerification>(props.live, 'POST', '/v1/operator/wallet/verify')
      setV({ state: 'ok', result })
    } catch (err) {
      if (err instanceof ApiError && err.code === 'LEDGER_TAMPERED')
        setV({ state: 'tampered', index: tamperedIndex(err), message: err.message })
      else setV({ state: 'error', message: problem(err) })
    }
    props.onDone()
  }
  return (
    <div class="stack">
      <div class="row">
        <Button onClick={() => void verify()} busy={v.state === 'checking'} data-testid="wallet-verify">
          Verify ledger
        </Button>
        <span class="muted">re-reads the ledger files and checks every entry’s hash and signature</span>
      </div>
      {v.state === 'ok' ? (
        <Notice tone="ok" testId="verify-result">
          <span data-ok="true">
            ✓ The ledger is intact: {v.result.entries} {v.result.entries === 1 ? 'entry' : 'entries'}, head{' '}
            <Short text={v.result.head} />
          </span>
        </Notice>
      ) : v.state === 'tampered' ? (
        <Notice tone="bad" testId="verify-result">
          <span data-ok="false" data-index={v.index}>
            ✗ The ledger was altered
            {v.index === undefined ? '' : `: the first bad entry is #${v.index}`} ({v.message})
          </span>
        </Notice>
      ) : v.state === 'error' ? (
        <Notice tone="bad" testId="verify-result">
          <span data-ok="error">{v.message}</span>
        </Notice>
      ) : null}
    </div>
  )
}

function Balance(props: { live: NodeLive; summary: WalletSummary | undefined; onChange(): void }) {
  const w = props.summary
  return (
    <Card title="Wallet">
      <div class="stats">
        <Stat label="balance" value={amount(w?.balance)} testId="wallet-balance" hint="committed, base units" />
        <Stat
          label="pending"
          value={w === undefined ? '–' : `${amount(w.pending.amount)}`}
          hint="sent payments not yet in a block"
          testId="wallet-pending"
        />
        <Stat label="pending payments" value={w?.pending.count ?? '–'} testId="wallet-pending-count" />
        <Stat
          label="deliveries waiting"
          value={w?.deliveriesPending ?? '–'}
          hint="sealed envelopes waiting for their recipient's receipt"
          testId="wallet-deliveries-count"
        />
      </div>
      <dl class="facts">
        <dt>DID</dt>
        <dd>{w === undefined ? '–' : <Short text={w.did} head={20} />}</dd>
        <dt>ledger</dt>
        <dd data-testid="wallet-ledger">
          {w === undefined ? (
            '–'
          ) : (
            <>
              {w.ledger.entries} {w.ledger.entries === 1 ? 'entry' : 'entries'}, head <Short text={w.ledger.head} />
            </>
          )}
        </dd>
        <dt>minimum fee</dt>
        <dd>{amount(w?.fee)}</dd>
      </dl>
      <div style={{ marginTop: '0.75rem' }}>
        <VerifyLedger live={props.live} onDone={props.onChange} />
      </div>
    </Card>
  )
}

// ---- sending ---------------------------------------------------------------------------------

/** Picks a recipient from this node's DID directory (absent when the node keeps none: 404). */
function RecipientSearch(props: { live: NodeLive; onPick(entry: DirectoryEntryView): void }) {
  const [available, setAvailable] = useState<boolean | undefined>(undefined)
  const [query, setQuery] = useState('')
  const [entries, setEntries] = useState<DirectoryEntryView[] | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)
  const [busy, setBusy] = useState(false)
  useEffect(() => {
    const abort = new AbortController()
    props.live.client.directorySearch({ limit: 1 }, { signal: abort.signal }).then(
      () => !abort.signal.aborted && setAvailable(true),
      (err: unknown) => !abort.signal.aborted && setAvailable(!(err instanceof ApiError && err.status === 404)),
    )
    return () => abort.abort()
  }, [])
  const search = async (): Promise<void> => {
    const q = query.trim()
    setBusy(true)
    try {
      const page = await props.live.client.directorySearch({ ...(q === '' ? {} : { query: q }), limit: 10 })
      setEntries(page.entries)
      setError(undefined)
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) setAvailable(false)
      else setError(errorText(err))
    } finally {
      setBusy(false)
    }
  }
  if (available !== true) return null
  return (
    <div class="stack recipient-search">
      <div class="row" role="search">
        <Field label="Or find the recipient in the directory">
          <input
            type="search"
            data-testid="wallet-directory-query"
            placeholder="name, category, tag…"
            value={query}
            onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
            onKeyDown={(e) => {
              if (e.key !== 'Enter') return
              e.preventDefault()
              void search()
            }}
          />
        </Field>
        <button
          type="button"
          class="button secondary"
          disabled={busy}
          data-testid="wallet-directory-search"
          onClick={() => void search()}
        >
          {busy ? '…' : 'Find'}
        </button>
      </div>
      {error === undefined ? null : <Notice tone="bad">{error}</Notice>}
      {entries === undefined ? null : entries.length === 0 ? (
        <p class="empty">No entry matches.</p>
      ) : (
        <ul class="picks" data-testid="wallet-directory-results">
          {entries.map((e) => (
            <li key={e.did}>
              <button
                type="button"
                class="pick"
                data-testid="wallet-pick"
                data-did={e.did}
                title={e.did}
                onClick={() => {
                  props.onPick(e)
                  setEntries(undefined)
                }}
              >
                <span class="pick-text">{e.description}</span>
                <code class="pick-did">{shortText(e.did, 16, 6)}</code>
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  )
}

type SendState =
  | { phase: 'idle' }
  | { phase: 'sending' }
  | { phase: 'sent'; payment: WalletPaymentView }
  | { phase: 'failed'; message: string }

interface Invoice {
  name: string
  base64: string
  bytes: number
}

function SendForm(props: { live: NodeLive; summary: WalletSummary | undefined; onSent(p: WalletPaymentView): void }) {
  const s = useLive(props.live)
  const [to, setTo] = useState('')
  const [picked, setPicked] = useState<DirectoryEntryView | undefined>(undefined)
  const [value, setValue] = useState('')
  const [memo, setMemo] = useState('')
  const [fee, setFee] = useState('')
  const [invoice, setInvoice] = useState<Invoice | undefined>(undefined)
  const [invoiceError, setInvoiceError] = useState<string | undefined>(undefined)
  const [state, setState] = useState<SendState>({ phase: 'idle' })
  const file = useRef<HTMLInputElement>(null)
  const memoBytes = utf8Length(memo)

  const readInvoice = async (input: HTMLInputElement): Promise<void> => {
    const chosen = input.files?.[0]
    setInvoice(undefined)
    setInvoiceError(undefined)
    if (chosen === undefined) return
    if (chosen.size > MAX_INVOICE_BYTES)
      return setInvoiceError(`${chosen.name} is ${size(chosen.size)}; an invoice may be ${size(MAX_INVOICE_BYTES)}.`)
    if (utf8Length(chosen.name) > MAX_INVOICE_NAME_BYTES) return setInvoiceError('The file name is too long.')
    try {
      const bytes = new Uint8Array(await chosen.arrayBuffer())
      setInvoice({ name: chosen.name, base64: base64(bytes), bytes: bytes.length })
    } catch (err) {
      setInvoiceError(`The file could not be read: ${errorText(err)}`)
    }
  }

  /** What is wrong with the form, before asking the node. */
  const check = (): string | undefined => {
    if (!DID_KEY.test(to.trim())) return 'The recipient is a did:key (did:key:z6Mk…).'
    if (to.trim() === props.summary?.did) return 'That is this node’s own DID.'
    if (!/^[1-9][0-9]*$/.test(value.trim())) return 'The amount is a whole number of base units, from 1.'
    if (fee.trim() !== '' && !/^[0-9]+$/.test(fee.trim())) return 'The fee is a whole number of base units.'
    if (memoBytes > MAX_MEMO_BYTES) return `The memo is ${memoBytes} bytes; it may be ${MAX_MEMO_BYTES}.`
    if (invoiceError !== undefined) return invoiceError
    return undefined
  }

  const send = async (): Promise<void> => {
    const wrong = check()
    if (wrong !== undefined) return setState({ phase: 'failed', message: wrong })
    const body: WalletSendBody = {
      to: to.trim(),
      amount: value.trim(),
      ...(memo === '' ? {} : { memo }),
      ...(invoice === undefined ? {} : { invoice: { name: invoice.name, base64: invoice.base64 } }),
      ...(fee.trim() === '' ? {} : { fee: fee.trim() }),
    }
    setState({ phase: 'sending' })
    try {
      const payment = await call<WalletPaymentView>(props.live, 'POST', '/v1/operator/wallet/send', body)
      setState({ phase: 'sent', payment })
      setValue('')
      setMemo('')
      setInvoice(undefined)
      if (file.current !== null) file.current.value = ''
      props.onSent(payment)
    } catch (err) {
      setState({ phase: 'failed', message: problem(err) })
    }
  }

  const balance = props.summary?.balance
  const total = /^[0-9]+$/.test(value.trim())
    ? BigInt(value.trim()) + BigInt(/^[0-9]+$/.test(fee.trim()) ? fee.trim() : (props.summary?.fee ?? '0'))
    : undefined
  const short = balance !== undefined && total !== undefined && total > BigInt(balance)
  return (
    <Card title="Send a payment">
      {s.token === undefined ? (
        <Notice tone="warn">
          Set the operator token first (on the <a href="#accounts">Accounts</a> page): paying spends this node’s funds.
        </Notice>
      ) : null}
      <form
        class="stack"
        data-testid="wallet-send-form"
        onSubmit={(e) => {
          e.preventDefault()
          void send()
        }}
      >
        <Field
          label="Recipient"
          hint={picked === undefined ? 'a did:key' : `from the directory: ${picked.description}`}
        >
          <input
            name="wallet-to"
            data-testid="wallet-to"
            required
            value={to}
            onInput={(e) => {
              setTo((e.target as HTMLInputElement).value)
              setPicked(undefined)
            }}
            placeholder="did:key:z6Mk…"
            autocomplete="off"
            autocapitalize="off"
            spellcheck={false}
          />
        </Field>
        <RecipientSearch
          live={props.live}
          onPick={(entry) => {
            setTo(entry.did)
            setPicked(entry)
          }}
        />
        <div class="row">
          <Field label="Amount" hint="base units">
            <input
              name="wallet-amount"
              data-testid="wallet-amount"
              required
              inputMode="numeric"
              pattern="[1-9][0-9]*"
              value={value}
              onInput={(e) => setValue((e.target as HTMLInputElement).value)}
              placeholder="1000"
            />
          </Field>
          <Field label="Fee" hint={`base units; empty: the minimum (${amount(props.summary?.fee)})`}>
            <input
              name="wallet-fee"
              data-testid="wallet-fee"
              inputMode="numeric"
              pattern="[0-9]*"
              value={fee}
              onInput={(e) => setFee((e.target as HTMLInputElement).value)}
              placeholder={props.summary?.fee ?? ''}
            />
          </Field>
        </div>
        <Field
          label="Memo"
          hint={`sealed to the recipient: only they read it (${memoBytes} / ${MAX_MEMO_BYTES} bytes)`}
        >
          <textarea
            name="wallet-memo"
            data-testid="wallet-memo"
            rows={2}
            value={memo}
            onInput={(e) => setMemo((e.target as HTMLTextAreaElement).value)}
            placeholder="optional"
          />
        </Field>
        <Field
          label="Invoice"
          hint={
            invoice === undefined
              ? `optional file, up to ${size(MAX_INVOICE_BYTES)}, sealed with the memo`
              : `${invoice.name}, ${size(invoice.bytes)}`
          }
        >
          <input
            ref={file}
            type="file"
            name="wallet-invoice"
            data-testid="wallet-invoice"
            onChange={(e) => void readInvoice(e.target as HTMLInputElement)}
          />
        </Field>
        {invoiceError === undefined ? null : <Notice tone="bad">{invoiceError}</Notice>}
        {short ? (
          <Notice tone="warn">
            Amount and fee ({amount(total?.toString())}) are more than the balance ({amount(balance)}).
          </Notice>
        ) : null}
        <button type="submit" class="button" data-testid="wallet-send" disabled={state.phase === 'sending'}>
          {state.phase === 'sending' ? 'Sealing and sending…' : 'Send'}
        </button>
      </form>
      <div data-testid="wallet-send-status" aria-live="polite">
        {state.phase === 'sent' ? (
          <Notice tone="ok">
            Sent {amount(state.payment.amount)} to <Short text={state.payment.to} />: follow it in the history below
            (pending until its block commits, then delivered to the recipient).
          </Notice>
        ) : state.phase === 'failed' ? (
          <Notice tone="bad" testId="wallet-send-error">
            {state.message}
          </Notice>
        ) : null}
      </div>
    </Card>
  )
}

// ---- history ---------------------------------------------------------------------------------

function InvoiceLink(props: {
  live: NodeLive
  payment: WalletPaymentView & { invoice: { name: string; bytes: number } }
}) {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | undefined>(undefined)
  const download = async (): Promise<void> => {
    setBusy(true)
    setError(undefined)
    try {
      const response = await walletFetch(
        props.live,
        'GET',
        `/v1/operator/wallet/payments/${encodeURIComponent(props.payment.id)}/invoice`,
      )
      if (!response.ok) throw await failure(response)
      const url = URL.createObjectURL(await response.blob())
      const a = document.createElement('a')
      a.href = url
      a.download = props.payment.invoice.name
      a.rel = 'noopener'
      document.body.append(a)
      a.click()
      a.remove()
      setTimeout(() => URL.revokeObjectURL(url), 30_000)
    } catch (err) {
      setError(problem(err))
    } finally {
      setBusy(false)
    }
  }
  return (
    <span class="invoice">
      <button
        type="button"
        class="link"
        data-testid="invoice-download"
        disabled={busy}
        onClick={() => void download()}
        title="download the invoice"
      >
        invoice: {props.payment.invoice.name}
      </button>{' '}
      <span class="muted">({size(props.payment.invoice.bytes)})</span>
      {error === undefined ? null : <span class="bad-text"> {error}</span>}
    </span>
  )
}

function PaymentCard(props: { live: NodeLive; p: WalletPaymentView; delivery: DeliveryView | undefined }) {
  const { p, delivery } = props
  const sent = p.direction === 'sent'
  return (
    <li
      class={`payment ${p.direction}`}
      data-testid="payment"
      data-id={p.id}
      data-direction={p.direction}
      data-status={p.status}
      data-delivery={p.delivery}
    >
      <div class="payment-head">
        <strong class="payment-amount" data-testid="payment-amount">
          {sent ? '−' : '+'}
          {amount(p.amount)}
        </strong>
        <span class="labels">
          <Badge tone={STATUS_TONE[p.status]} testId="payment-status">
            {p.status}
          </Badge>
          {sent ? (
            <Badge tone={DELIVERY_TONE[p.delivery]} testId="payment-delivery">
              {p.delivery === 'queued' && delivery !== undefined
                ? `queued · ${delivery.attempts} ${delivery.attempts === 1 ? 'try' : 'tries'}`
                : p.delivery}
            </Badge>
          ) : null}
        </span>
      </div>
      <div class="payment-party">
        <span class="muted">{sent ? 'to' : 'from'}</span> <Short text={p.counterparty} head={16} />
      </div>
      {p.memo === '' ? null : (
        <p class="memo" data-testid="payment-memo">
          {p.memo}
        </p>
      )}
      {p.invoice === undefined ? null : <InvoiceLink live={props.live} payment={{ ...p, invoice: p.invoice }} />}
      {p.status === 'failed' && p.failure !== undefined ? (
        <p class="bad-text" data-testid="payment-failure">
          failed: {p.failure}
        </p>
      ) : null}
      <dl class="facts payment-facts">
        <dt>made</dt>
        <dd>{when(p.createdAt)}</dd>
        {p.txHash === undefined ? null : (
          <>
            <dt>transaction</dt>
            <dd>
              <Short text={p.txHash} />
              {p.height === undefined ? '' : ` at height ${p.height}`}
            </dd>
          </>
        )}
        {p.receipt === undefined ? null : (
          <>
            <dt>receipt</dt>
            <dd>signed by the recipient {when(p.receipt.at)}</dd>
          </>
        )}
        <dt>payment</dt>
        <dd>
          <Short text={p.id} /> <span class="muted">· ledger #{p.ledgerIndex}</span>
        </dd>
      </dl>
    </li>
  )
}

function History(props: {
  live: NodeLive
  refreshKey: string
  justSent: Array<{ payment: WalletPaymentView; at: number }>
  deliveries: DeliveryView[]
}) {
  const [direction, setDirection] = useState<Direction>('all')
  const first = usePoll(
    (signal) => call<HistoryPage>(props.live, 'GET', historyPath(direction), undefined, signal),
    POLL_MS,
    `${direction}:${props.refreshKey}`,
  )
  const [older, setOlder] = useState<HistoryPage | undefined>(undefined)
  const [loading, setLoading] = useState(false)
  const [moreError, setMoreError] = useState<string | undefined>(undefined)
  useEffect(() => setOlder(undefined), [direction])
  const cursor = older === undefined ? first.value?.cursor : older.cursor
  const loadMore = async (): Promise<void> => {
    if (cursor === undefined) return
    setLoading(true)
    try {
      const page = await call<HistoryPage>(props.live, 'GET', historyPath(direction, cursor))
      setOlder({
        payments: [...(older?.payments ?? []), ...page.payments],
        ...(page.cursor === undefined ? {} : { cursor: page.cursor }),
      })
      setMoreError(undefined)
    } catch (err) {
      setMoreError(problem(err))
    } finally {
      setLoading(false)
    }
  }
  const seen = new Set<string>()
  const rows: WalletPaymentView[] = []
  const fresh = first.value?.payments ?? []
  // a payment just sent shows at once, until the next read has it
  const waiting = props.justSent
    .filter((j) => direction !== 'received' && Date.now() - j.at < 30_000 && !fresh.some((f) => f.id === j.payment.id))
    .map((j) => j.payment)
  for (const p of [...waiting, ...fresh, ...(older?.payments ?? [])]) {
    if (seen.has(p.id)) continue
    seen.add(p.id)
    rows.push(p)
  }
  const byId = new Map(props.deliveries.map((d) => [d.id, d]))
  return (
    <Card
      title="History"
      wide
      actions={
        <select
          aria-label="which payments"
          class="compact"
          data-testid="wallet-direction"
          value={direction}
          onChange={(e) => setDirection((e.target as HTMLSelectElement).value as Direction)}
        >
          <option value="all">all</option>
          <option value="sent">sent</option>
          <option value="received">received</option>
        </select>
      }
    >
      {first.error !== undefined ? (
        <Notice tone={first.value === undefined ? 'bad' : 'warn'}>{problem(first.error)}</Notice>
      ) : null}
      {first.value === undefined && first.error === undefined ? (
        <p class="empty">Reading the ledger…</p>
      ) : rows.length === 0 && first.value !== undefined ? (
        <p class="empty">No payments yet.</p>
      ) : (
        <ul class="payments" data-testid="wallet-history">
          {rows.map((p) => (
            <PaymentCard key={p.id} live={props.live} p={p} delivery={byId.get(p.id)} />
          ))}
        </ul>
      )}
      {moreError === undefined ? null : <Notice tone="bad">{moreError}</Notice>}
      {cursor === undefined ? null : (
        <Button class="button secondary" busy={loading} onClick={() => void loadMore()} data-testid="wallet-more">
          Older payments
        </Button>
      )}
    </Card>
  )
}

// ---- deliveries in flight --------------------------------------------------------------------

function Deliveries(props: { deliveries: DeliveryView[] | undefined; error: unknown }) {
  const list = props.deliveries
  return (
    <Card title="Deliveries on their way">
      <p class="muted">
        A payment’s sealed envelope goes to the recipient directly; while it is offline, a copy waits with mailbox
        peers. Each ends with the recipient’s signed receipt.
      </p>
      {props.error !== undefined && list === undefined ? <Notice tone="bad">{problem(props.error)}</Notice> : null}
      {list === undefined ? null : list.length === 0 ? (
        <p class="empty" data-testid="wallet-deliveries-empty">
          Nothing waiting: every envelope was acknowledged.
        </p>
      ) : (
        <ul class="payments" data-testid="wallet-deliveries">
          {list.map((d) => (
            <li key={d.id} class="payment" data-testid="delivery" data-id={d.id}>
              <div class="payment-party">
                <span class="muted">to</span> <Short text={d.to} head={16} />
              </div>
              <dl class="facts payment-facts">
                <dt>attempts</dt>
                <dd data-testid="delivery-attempts">{d.attempts}</dd>
                <dt>next try</dt>
                <dd>{until(d.nextAttemptAt)}</dd>
                <dt>stored with</dt>
                <dd data-testid="delivery-stored">
                  {d.storedWith.length === 0 ? (
                    <span class="muted">no mailbox peer yet</span>
                  ) : (
                    <span class="labels">
                      {d.storedWith.map((peer) => (
                        <Short key={peer} text={peer} head={14} />
                      ))}
                    </span>
                  )}
                </dd>
                {d.lastError === undefined ? null : (
                  <>
                    <dt>last error</dt>
                    <dd class="bad-text">{d.lastError}</dd>
                  </>
                )}
                <dt>offered until</dt>
                <dd>{when(d.expiresAt)}</dd>
                <dt>payment</dt>
                <dd>
                  <Short text={d.id} />
                </dd>
              </dl>
            </li>
          ))}
        </ul>
      )}
    </Card>
  )
}

// ---- the page --------------------------------------------------------------------------------

export function Wallet(props: { live: NodeLive }) {
  const s = useLive(props.live)
  const [version, setVersion] = useState(0)
  const [justSent, setJustSent] = useState<Array<{ payment: WalletPaymentView; at: number }>>([])
  const bump = (): void => setVersion((n) => n + 1)
  // read again on every other block, every few seconds, and after this page changed something
  const key = `${s.token ?? ''}:${Math.floor(s.height / 2)}:${version}`
  const summary = usePoll(
    (signal) => call<WalletSummary>(props.live, 'GET', '/v1/operator/wallet', undefined, signal),
    POLL_MS,
    key,
  )
  const deliveries = usePoll(
    (signal) =>
      call<{ deliveries: DeliveryView[] }>(props.live, 'GET', '/v1/operator/wallet/deliveries', undefined, signal),
    POLL_MS,
    key,
  )
  const blocked = summary.value === undefined && summary.error !== undefined
  return (
    <div class="grid wallet">
      {s.token === undefined ? (
        <Notice tone="warn" testId="wallet-no-token">
          The wallet is private: set the operator token on the <a href="#accounts">Accounts</a> page (or open the link{' '}
          <code>donghae devnet</code> prints).
        </Notice>
      ) : blocked ? (
        <Notice tone="bad" testId="wallet-error">
          {problem(summary.error)}
        </Notice>
      ) : null}
      <Balance live={props.live} summary={summary.value} onChange={bump} />
      <SendForm
        live={props.live}
        summary={summary.value}
        onSent={(p) => {
          setJustSent((list) => [{ payment: p, at: Date.now() }, ...list].slice(0, 10))
          bump()
        }}
      />
      <History live={props.live} refreshKey={key} justSent={justSent} deliveries={deliveries.value?.deliveries ?? []} />
      <Deliveries deliveries={deliveries.value?.deliveries} error={deliveries.error} />
    </div>
  )
}
