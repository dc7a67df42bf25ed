// The dashboard's service worker: it makes the dashboard an installable app that starts offline.
//
//   - The app shell (the page, its hashed scripts and styles, the manifest, the icons) is cached:
//     the page network-first (a new build shows at once when the node answers, the cached one
//     when it does not), the hashed files under /assets/ cache-first (their names change with
//     their content), the rest stale-while-revalidate.
//   - The API (/v1/), the API explorer (/docs) and /metrics are never touched: every call goes to
//     the node, and nothing it answers (a wallet's history, memos, balances) is ever stored here.
//   - Only same-origin GETs are handled; everything else goes to the network as if there were no
//     service worker.
/* global self, caches, fetch, Response */
const CACHE = 'donghae-shell-v1'
const SHELL = ['/', '/manifest.webmanifest', '/icon-192.png', '/icon-512.png']
const NEVER = ['/v1', '/docs', '/metrics']

const isApi = (path) => NEVER.some((p) => path === p || path.startsWith(`${p}/`))

/** The page's own scripts and styles, as its HTML names them (their names are Vite's hashes). */
function assetsOf(html) {
  const found = new Set()
  for (const match of html.matchAll(/(?:src|href)="(\/assets\/[^"?#]+)"/g)) found.add(match[1])
  return [...found]
}

/** Stores a good same-origin answer (never a partial, redirected or opaque one). */
async function keep(request, response) {
  if (!response.ok || response.status !== 200 || response.type !== 'basic' || response.redirected) return
  const cache = await caches.open(CACHE)
  await cache.put(request, response)
}

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE)
      const page = await fetch('/', { cache: 'no-cache', headers: { accept: 'text/html' } })
      if (!page.ok) throw new Error(`the dashboard answered ${page.status}`)
      const html = await page.clone().text()
      const assets = assetsOf(html)
      await cache.addAll([...SHELL.slice(1), ...assets])
      await cache.put('/', page)
      // The pages that load on demand (the Wallet, the Directory): their chunks, as the entry
      // script names them, so that an installed app opens any page offline (best effort).
      const chunks = new Set()
      for (const script of assets.filter((a) => a.endsWith('.js'))) {
        const text = await (await cache.match(script)).text()
        for (const match of text.matchAll(/["'`](?:\.\/|\/?assets\/)([\w.-]+\.(?:js|css))["'`]/g))
          chunks.add(`/assets/${match[1]}`)
      }
      for (const chunk of chunks) if (!assets.includes(chunk)) await cache.add(chunk).catch(() => undefined)
      // An earlier build's files are gone from the node: forget them.
      const wanted = new Set([...SHELL, ...assets, ...chunks].map((p) => new URL(p, self.location.origin).href))
      for (const request of await cache.keys()) if (!wanted.has(request.url)) await cache.delete(request)
      await self.skipWaiting()
    })(),
  )
})

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name)
      await self.clients.claim()
    })(),
  )
})

self.addEventListener('fetch', (event) => {
  const request = event.request
  if (request.method !== 'GET') return
  const url = new URL(request.url)
  if (url.origin !== self.location.origin || isApi(url.pathname)) return
  if (request.mode === 'navigate') {
    // The dashboard routes itself by the fragment: every page is '/'.
    event.respondWith(
      (async () => {
        try {
          const response = await fetch(request)
          if (url.pathname === '/' || url.pathname === '/index.html') {
            const copy = response.clone()
            event.waitUntil(keep('/', copy))
          }
          return response
        } catch (err) {
          const cached = await caches.match('/')
          if (cached !== undefined) return cached
          throw err
        }
      })(),
    )
    return
  }
  if (url.pathname.startsWith('/assets/')) {
    event.respondWith(
      (async () => {
        const cached = await caches.match(request)
        if (cached !== undefined) return cached
        const response = await fetch(request)
        event.waitUntil(keep(request, response.clone()))
        return response
      })(),
    )
    return
  }
  if (SHELL.includes(url.pathname)) {
    // stale-while-revalidate: the cached copy at once, a fresh one stored for the next start
    const fresh = fetch(request).then(
      async (response) => {
        await keep(request, response.clone())
        return response
      },
      () => undefined,
    )
    event.waitUntil(fresh)
    event.respondWith((async () => (await caches.match(request)) ?? (await fresh) ?? Response.error())())
  }
})
