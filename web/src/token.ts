// The operator token: from the URL fragment (#token=…, as `donghae devnet` prints it), kept in
// localStorage, or typed into the Accounts page. The fragment never reaches the server, and it
// is removed from the address bar once read so it does not end up in screenshots or bookmarks.
const KEY = 'donghae.operatorToken'

export function takeTokenFromLocation(): void {
  const hash = window.location.hash.replace(/^#/, '')
  const params = new URLSearchParams(hash)
  const token = params.get('token')
  if (token === null || token === '') return
  saveToken(token)
  params.delete('token')
  const rest = params.toString()
  history.replaceState(null, '', `${window.location.pathname}${window.location.search}${rest === '' ? '' : `#${rest}`}`)
}

export function loadToken(): string | undefined {
  try {
    return localStorage.getItem(KEY) ?? undefined
  } catch {
    return undefined
  }
}

export function saveToken(token: string | undefined): void {
  try {
    if (token === undefined || token === '') localStorage.removeItem(KEY)
    else localStorage.setItem(KEY, token)
  } catch {
    // storage disabled: the token lives for this page only
  }
}
