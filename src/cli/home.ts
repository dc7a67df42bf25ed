/** The node's home directory: where its keystore, config and (later) chain data live. */
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { CONFIG_FILE_NAME } from '../core/config.ts'
import { API_TOKEN_FILE } from '../api/auth.ts'

export const HOME_ENV = 'DONGHAE_HOME'

export interface HomeLayout {
  dir: string
  keystore: string
  config: string
  data: string
  /** The HTTP API's operator token (mode 0600). */
  apiToken: string
}

/** `--home` flag > `DONGHAE_HOME` > `~/.donghae`. */
export function resolveHome(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): HomeLayout {
  const dir = resolve(flag ?? env[HOME_ENV] ?? join(homedir(), '.donghae'))
  return {
    dir,
    keystore: join(dir, 'keystore.json'),
    config: join(dir, CONFIG_FILE_NAME),
    data: join(dir, 'data'),
    apiToken: join(dir, API_TOKEN_FILE),
  }
}
