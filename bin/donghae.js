#!/usr/bin/env node
// Entry point. Donghae needs Node.js 24 (libp2p 3 needs >= 22; TypeScript runs through Node's
// type stripping). In a checkout, `npm install` puts Node 24 (the `node` devDependency) first on
// the PATH of `npm start`, `npm test` and `npx donghae`.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const major = Number(process.versions.node.split('.')[0])
if (major < 24) {
  process.stderr.write(
    `donghae: Node.js 24 or newer is required (this is ${process.version}) — run it as \`npx donghae …\` in a checkout after \`npm install\`, or install Node.js 24\n`,
  )
  process.exit(1)
}

// A source checkout runs the TypeScript directly; an installed package runs the compiled dist/.
const source = new URL('../src/cli/main.ts', import.meta.url)
const inNodeModules = fileURLToPath(import.meta.url)
  .split(/[\\/]/)
  .includes('node_modules')
const entry = !inNodeModules && existsSync(source) ? source : new URL('../dist/cli/main.js', import.meta.url)
const { main } = await import(entry.href)
await main()
