// Accounts: the node's own balance, sending a transfer from it (operator token), the token
// itself, and a balance lookup for any DID.
import { useState } from 'preact/hooks'
import { ApiError, type AccountJson } from '../../src/api/client.ts'
import type { NodeLive } from './live.ts'
import { useLive } from './live.ts'
import { amount, errorText } from './format.ts'
import { usePoll } from './poll.ts'
import { Badge, Card, Field, Notice, Short, Stat } from './ui.tsx'

type SendState =
  | { phase: 'idle' }
  | { phase: 'sending' }
  | { phase: 'pending'; hash: string }
  | { phase: 'committed'; hash: string; height: number }
  | { phase: 'failed'; message: string }

function TokenCard(props: { live: NodeLive }) {
  const s = useLive(props.live)
  const [text, setText] = useState('')
  const tone = s.operator === 'ok' ? 'ok' : s.operator === 'rejected' ? 'bad' : 'neutral'
  const label = { none: 'not set', checking: 'checking…', ok: 'accepted', rejected: 'rejected by the node' }[s.operator]
  return (
    <Card title="Operator token">
      <p>
        Token:{' '}
        <Badge tone={tone} testId="token-state">
          {label}
        </Badge>
      </p>
      <p class="muted">
        Actions that spend this node’s funds need the token in <code>&lt;home&gt;/api-token</code>. It is kept in this
        browser only. <code>donghae devnet</code> prints a link that carries it.
      </p>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault()
          props.live.setToken(text.trim() === '' ? undefined : text.trim())
          setText('')
        }}
      >
        <Field label="Token">
          <input
            type="password"
            autocomplete="off"
            value={text}
            onInput={(e) => setText((e.target as HTMLInputElement).value)}
            placeholder="paste the token"
          />
        </Field>
        <button type="submit" class="button">
          Save
        </button>
        {s.token === undefined ? null : (
          <button type="button" class="button secondary" onClick={() => props.live.setToken(undefined)}>
            Forget
          </button>
        )}
      </form>
    </Card>
  )
}

function SendCard(props: { live: NodeLive; onSent(): void }) {
  const s = useLive(props.live)
  const [to, setTo] = useState('')
  const [value, setValue] = useState('')
  const [memo, setMemo] = useState('')
  const [state, setState] = useState<SendState>({ phase: 'idle' })
  const send = async (): Promise<void> => {
    setState({ phase: 'sending' })
    try {
      const sent = await props.live.client.transfer({
        to: to.trim(),
        amount: value.trim(),
        ...(memo === '' ? {} : { memo }),
      })
      setState({ phase: 'pending', hash: sent.hash })
      const done = await props.live.client.waitForTx(sent.hash, { timeoutMs: 120_000 })
      setState({ phase: 'committed', hash: sent.hash, height: done.height })
      props.onSent()
    } catch (err) {
      setState({
        phase: 'failed',
        message:
          err instanceof ApiError && err.status === 401
            ? 'The node refused the operator token; set it above.'
            : errorText(err),
      })
    }
  }
  return (
    <Card title="Send">
      {s.token === undefined ? (
        <Notice tone="warn">Set the operator token first: sending spends this node’s funds.</Notice>
      ) : null}
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault()
          void send()
        }}
      >
        <Field label="Recipient" hint="a did:key">
          <input
            name="to"
            required
            value={to}
            onInput={(e) => setTo((e.target as HTMLInputElement).value)}
            placeholder="did:key:z6Mk…"
            autocomplete="off"
            spellcheck={false}
          />
        </Field>
        <Field label="Amount" hint="base units">
          <input
            name="amount"
            required
            inputMode="numeric"
            pattern="[1-9][0-9]*"
            value={value}
            onInput={(e) => setValue((e.target as HTMLInputElement).value)}
            placeholder="1000"
          />
        </Field>
        <Field label="Memo" hint="optional">
          <input
            name="memo"
            value={memo}
            maxLength={200}
            onInput={(e) => setMemo((e.target as HTMLInputElement).value)}
          />
        </Field>
        <button
          type="submit"
          class="button"
          data-testid="send"
          disabled={state.phase === 'sending' || state.phase === 'pending'}
        >
          Send
        </button>
      </form>
      <div data-testid="transfer-status">
        {state.phase === 'sending' ? <Notice tone="neutral">signing and submitting…</Notice> : null}
        {state.phase === 'pending' ? (
          <Notice tone="neutral">
            submitted <Short text={state.hash} />, waiting for a block…
          </Notice>
        ) : null}
        {state.phase === 'committed' ? (
          <Notice tone="ok">
            committed at height {state.height} (<Short text={state.hash} />)
          </Notice>
        ) : null}
        {state.phase === 'failed' ? <Notice tone="bad">{state.message}</Notice> : null}
      </div>
    </Card>
  )
}

function Lookup(props: { live: NodeLive }) {
  const [did, setDid] = useState('')
  const [account, setAccount] = useState<AccountJson | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)
  const look = async (): Promise<void> => {
    setError(undefined)
    try {
      setAccount(await props.live.client.account(did.trim()))
    } catch (err) {
      setAccount(undefined)
      setError(errorText(err))
    }
  }
  return (
    <Card title="Look up an account">
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault()
          void look()
        }}
      >
        <Field label="DID">
          <input
            data-testid="lookup-did"
            value={did}
            onInput={(e) => setDid((e.target as HTMLInputElement).value)}
            placeholder="did:key:z6Mk…"
            spellcheck={false}
          />
        </Field>
        <button type="submit" class="button" data-testid="lookup">
          Look up
        </button>
      </form>
      {error === undefined ? null : <Notice tone="bad">{error}</Notice>}
      {account === undefined ? null : (
        <div class="stats">
          <Stat label="balance" value={amount(account.balance)} testId="lookup-balance" />
          <Stat label="nonce" value={account.nonce} />
          <Stat label="bonded" value={amount(account.stake?.bonded ?? '0')} />
        </div>
      )}
    </Card>
  )
}

export function Accounts(props: { live: NodeLive }) {
  const s = useLive(props.live)
  const did = s.status?.did
  const [sent, setSent] = useState(0)
  const own = usePoll(
    (signal) => (did === undefined ? Promise.resolve(undefined) : props.live.client.account(did, { signal })),
    10_000,
    `${did ?? ''}:${Math.floor(s.height / 2)}:${sent}`,
  )
  const a = own.value
  return (
    <div class="grid">
      <Card title="This node’s account">
        <div class="stats">
          <Stat label="balance" value={amount(a?.balance)} testId="own-balance" />
          <Stat label="nonce" value={a?.nonce ?? '–'} />
          <Stat label="bonded stake" value={amount(a?.stake?.bonded ?? (a === undefined ? undefined : '0'))} />
        </div>
        <dl class="facts">
          <dt>DID</dt>
          <dd>{did === undefined ? '–' : <Short text={did} head={24} />}</dd>
        </dl>
      </Card>
      <SendCard live={props.live} onSent={() => setSent((n) => n + 1)} />
      <TokenCard live={props.live} />
      <Lookup live={props.live} />
    </div>
  )
}
