// The node dashboard: one page per area, live through the node's event stream. Served by every
// node at `/`; it talks to the node that served it (same origin).
import { render, type ComponentType } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { Accounts } from './accounts.tsx'
import { Chain } from './chain.tsx'
import { Experts } from './experts.tsx'
import { Inference } from './inference.tsx'
import { HEALTH_TONE, NodeLive, useLive } from './live.ts'
import { Network } from './network.tsx'
import { Overview } from './overview.tsx'
import { takeTokenFromLocation } from './token.ts'
import { Badge } from './ui.tsx'
import './styles.css'

/** A page whose code loads when it is first opened (the Directory's WebRTC client, the Wallet: not in the first load). */
function lazyPage(load: () => Promise<ComponentType<{ live: NodeLive }>>): ComponentType<{ live: NodeLive }> {
  let loaded: Promise<ComponentType<{ live: NodeLive }>> | undefined
  return function LazyPage(props: { live: NodeLive }) {
    const [view, setView] = useState<{ View: ComponentType<{ live: NodeLive }> } | { error: string } | undefined>()
    useEffect(() => {
      loaded ??= load()
      loaded.then(
        (View) => setView({ View }),
        (err: unknown) => {
          loaded = undefined
          setView({ error: `This page failed to load (${String(err)}): reload to try again.` })
        },
      )
    }, [])
    if (view === undefined) return <p class="empty">Loading…</p>
    if ('error' in view) return <p class="notice bad">{view.error}</p>
    return <view.View live={props.live} />
  }
}

const PAGES = [
  { id: 'overview', label: 'Overview', view: Overview },
  { id: 'network', label: 'Network', view: Network },
  { id: 'chain', label: 'Chain', view: Chain },
  { id: 'inference', label: 'Inference', view: Inference },
  { id: 'experts', label: 'Experts', view: Experts },
  { id: 'directory', label: 'Directory', view: lazyPage(() => import('./directory.tsx').then((m) => m.Directory)) },
  { id: 'wallet', label: 'Wallet', view: lazyPage(() => import('./wallet.tsx').then((m) => m.Wallet)) },
  { id: 'arena', label: 'Arena', view: lazyPage(() => import('./arena.tsx').then((m) => m.Arena)) },
  { id: 'fl', label: 'FL', view: lazyPage(() => import('./fl.tsx').then((m) => m.Fl)) },
  { id: 'governance', label: 'Governance', view: lazyPage(() => import('./governance.tsx').then((m) => m.Governance)) },
  { id: 'accounts', label: 'Accounts', view: Accounts },
  { id: 'resources', label: 'Resources', view: lazyPage(() => import('./resources.tsx').then((m) => m.Resources)) },
] as const

type PageId = (typeof PAGES)[number]['id']

function pageFromHash(): PageId {
  const id = window.location.hash.replace(/^#/, '')
  return PAGES.find((p) => p.id === id)?.id ?? 'overview'
}

function App(props: { live: NodeLive }) {
  const s = useLive(props.live)
  const [page, setPage] = useState<PageId>(pageFromHash())
  useEffect(() => {
    const onHash = (): void => setPage(pageFromHash())
    window.addEventListener('hashchange', onHash)
    return () => window.removeEventListener('hashchange', onHash)
  }, [])
  const View = PAGES.find((p) => p.id === page)?.view ?? Overview
  const tone = HEALTH_TONE[s.health]
  return (
    <>
      <header class="top">
        <div class="brand">
          <span class="logo" aria-hidden="true" />
          <strong>Donghae</strong>
          <span class="muted">{s.status?.moniker ?? ''}</span>
        </div>
        <div class="top-stats">
          <Badge tone={tone}>{s.health}</Badge>
          <span>
            height <strong data-testid="height">{s.height}</strong>
          </span>
          <span class="hide-narrow">{s.status?.peers ?? 0} peers</span>
        </div>
        <nav class="tabs" role="tablist">
          {PAGES.map((p) => (
            <a
              key={p.id}
              href={`#${p.id}`}
              role="tab"
              aria-selected={p.id === page}
              class={p.id === page ? 'tab active' : 'tab'}
            >
              {p.label}
            </a>
          ))}
        </nav>
      </header>
      <main>
        {s.error !== undefined && s.status === undefined ? <p class="notice bad">{s.error}</p> : null}
        <View live={props.live} />
      </main>
      <footer class="muted">
        API explorer: <a href="/docs">/docs</a> · metrics: <a href="/metrics">/metrics</a>
      </footer>
    </>
  )
}

takeTokenFromLocation()
const live = new NodeLive(window.location.origin)
live.start()
render(<App live={live} />, document.getElementById('app') as HTMLElement)

// The service worker (public/sw.js) makes the dashboard an installable app that starts offline; it
// never stores what the API answers. Browsers offer it only to secure origins (https, localhost).
if ('serviceWorker' in navigator && window.isSecureContext) {
  // The entry script's name changes with every build: a new build installs the worker again, which
  // stores that build's files and forgets the previous one's.
  const build = new URL(import.meta.url).pathname.replace(/^.*\//, '')
  const register = (): void => {
    navigator.serviceWorker
      .register(`/sw.js?build=${encodeURIComponent(build)}`, { scope: '/' })
      .catch((err: unknown) => {
        console.warn('the service worker did not register: the dashboard works, but not offline', err)
      })
  }
  if (document.readyState === 'complete') register()
  else window.addEventListener('load', register, { once: true })
}
