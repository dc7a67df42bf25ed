import type { Command } from 'commander'
import { CONFIG_KEYS, type ConfigKey } from '../../core/config.ts'
import { createContext, type CliIo } from '../context.ts'

export function registerConfig(program: Command, io: CliIo): void {
  const config = program.command('config').description("inspect the node's configuration")
  config
    .command('show')
    .description('print the effective configuration and where each value came from')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
Precedence: flags > environment (DONGHAE_*) > <home>/config.json > defaults.

Keys:
${(Object.keys(CONFIG_KEYS) as ConfigKey[]).map((k) => `  ${k} (${CONFIG_KEYS[k].env}): ${CONFIG_KEYS[k].description}`).join('\n')}

Examples:
  $ donghae config show
  $ DONGHAE_LOG_LEVEL=debug donghae config show --json`,
    )
    .action((options: { json?: boolean }, command: Command) => {
      const ctx = createContext(command, io)
      const { config: values, sources } = ctx.config()
      const keys = Object.keys(CONFIG_KEYS) as ConfigKey[]
      if (options.json === true) {
        ctx.json(
          Object.fromEntries(keys.map((k) => [k, { value: values[k], source: sources[k], env: CONFIG_KEYS[k].env }])),
        )
        return
      }
      for (const key of keys)
        ctx.out(
          `${key.padEnd(10)} ${JSON.stringify(values[key]).padEnd(24)} (${sources[key]}; env ${CONFIG_KEYS[key].env})`,
        )
    })
}
