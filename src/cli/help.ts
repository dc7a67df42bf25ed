/**
 * Examples for the command groups (`donghae tx --help`, `donghae keys --help`...), whose own
 * registration only gives their subcommands examples. Every command's --help then ends with
 * runnable examples (test/cli-help.test.ts checks).
 */
import type { Command } from 'commander'

const GROUP_EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  version: ['donghae version', 'donghae version --json'],
  did: ['donghae did resolve did:key:z6Mk\u2026', 'donghae did resolve did:key:z6Mk\u2026 --format Multikey'],
  keys: [
    'donghae keys export --out backup.json',
    'donghae keys import backup.json',
    'donghae keys --keychain',
    'donghae keys --no-keychain',
  ],
  config: ['donghae config show', 'donghae config show --json'],
  chain: ['donghae chain status', 'donghae --node http://127.0.0.1:26658 chain status --json'],
  tx: ['donghae tx transfer --to did:key:z6Mk\u2026 --amount 1000 --wait', 'donghae tx show 3f2a\u2026'],
  stake: [
    'donghae stake bond --amount 5000 --wait',
    'donghae stake unbond --amount 1000',
    'donghae stake withdraw',
    'donghae stake unjail --wait',
  ],
  worker: [
    'donghae worker bond --amount 5000 --wait',
    'donghae worker unbond --amount 1000',
    'donghae worker withdraw',
  ],
  deposit: [
    'donghae deposit add --gateway did:key:z6Mk\u2026 --amount 10000 --wait',
    'donghae deposit show did:key:z6Mk\u2026',
    'donghae deposit withdraw --gateway did:key:z6Mk\u2026 --amount 5000',
    'donghae deposit reclaim --gateway did:key:z6Mk\u2026',
  ],
  sim: [
    'donghae sim consensus --nodes 4 --byzantine 1 --seed 7 --count 100 --json',
    'donghae sim audit --behaviour cheat10 --seed 1 --count 20 --json',
  ],
  nat: ['donghae nat probe --json', 'donghae nat status'],
  model: ['donghae model list --json', 'donghae model publish models/digits-mlp.onnx --name my-digits --price 5'],
  experts: [
    'donghae experts list --family moby-moe',
    'donghae experts propose --expert layer0.expert3 --weights e3.safetensors --wait',
    'donghae experts chat "Call me Ishmael." --top-k 2',
  ],
  directory: [
    'donghae directory register --description "Cold noodles, Gangneung" --category restaurant --tag noodles',
    'donghae directory search noodles --category restaurant',
    'donghae directory show did:key:z6Mk\u2026',
  ],
  receipt: [
    'donghae receipt verify receipt.json',
    'donghae receipt verify receipt.json --node http://127.0.0.1:26657 --json',
  ],
}

export function addGroupExamples(program: Command): void {
  for (const command of program.commands) {
    const examples = GROUP_EXAMPLES[command.name()]
    if (examples === undefined) continue
    command.addHelpText('after', `\nExamples:\n${examples.map((e) => `  $ ${e}`).join('\n')}`)
  }
}
