#!/usr/bin/env node
// Entry point. Donghae needs Node.js 24 (libp2p 3 needs >= 22; TypeScript runs through Node's
// type stripping). In a checkout, `npm install` puts Node 24 (the `node` devDependency) first on
// the PATH of `npm start`, `npm test` and `npx donghae`. package.json declares no `engines`
// (npm would warn EBADENGINE on every call under the system's older Node, which only runs npm):
// this check is the guard, and it runs before anything that needs Node 24 is loaded.
import { existsSync } from 'node:fs'
import module from 'node:module'
import { fileURLToPath } from 'node:url'

const major = Number(process.versions.node.split('.')[0])
if (major < 24) {
  const local = fileURLToPath(new URL('../node_modules/.bin/node', import.meta.url))
  const how = existsSync(local)
    ? `run it as \`npx donghae \u2026\` (it uses the project's Node 24, ${local})`
    : 'run `npm install` in the checkout, then `npx donghae \u2026` (npm install brings Node 24), or install Node.js 24'
  process.stderr.write(`donghae: Node.js 24 or newer is required (this is ${process.version}): ${how}\n`)
  process.exit(1)
}

// V8's compiled code for every module is kept on disk (os.tmpdir()/node-compile-cache, checked
// against each file's content), so the second start of a command skips most of the compiling:
// `donghae node` starts ~0.5 s sooner. NODE_DISABLE_COMPILE_CACHE=1 turns it off.
module.enableCompileCache?.()

// A source checkout runs the TypeScript directly; an installed package runs the compiled dist/.
const source = new URL('../src/cli/main.ts', import.meta.url)
const inNodeModules = fileURLToPath(import.meta.url)
  .split(/[\\/]/)
  .includes('node_modules')
const entry = !inNodeModules && existsSync(source) ? source : new URL('../dist/cli/main.js', import.meta.url)
const { main } = await import(entry.href)
await main()
