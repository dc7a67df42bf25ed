// Vite builds the dashboard (web/ → web/dist), which every node serves at `/`.
// `npm run build:web` (scripts/build-web.ts) runs it when sources changed; `npx vite web` serves
// it with hot reload against a devnet node at DONGHAE_NODE (default http://127.0.0.1:26657).
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'

const node = process.env.DONGHAE_NODE ?? 'http://127.0.0.1:26657'
// The node answers only for the hosts it knows (src/api/host-check.ts): the proxy sends the node's
// own Host. Its POSTs still carry this page's Origin, so add it to the node's apiCors
// (DONGHAE_API_CORS=http://localhost:5173).
const target = { target: node, changeOrigin: true }

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: true, reportCompressedSize: false },
  server: { proxy: { '/v1': target, '/metrics': target, '/docs': target } },
})
