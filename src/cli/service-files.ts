/**
 * The files `donghae service install` writes so the OS keeps a node running: a systemd user
 * unit on Linux (`~/.config/systemd/user/donghae.service`) and a launchd agent on macOS
 * (`~/Library/LaunchAgents/org.donghae.node.plist`). Both run `donghae node` with absolute paths
 * (the Node.js binary, bin/donghae.js, the home, the password file), restart it when it fails,
 * and have it write its logs to a file that it rotates itself (`--log-file`, log-file.ts).
 * Pure functions of a spec, so tests check the exact text for both platforms anywhere.
 */
import { join } from 'node:path'
import { NODE_PROCESS_FLAGS } from './node-process.ts'

export type ServicePlatform = 'linux' | 'darwin'
export const SERVICE_PLATFORMS: readonly ServicePlatform[] = ['linux', 'darwin']

export const SYSTEMD_UNIT = 'donghae.service'
export const LAUNCHD_LABEL = 'org.donghae.node'

/** Seconds the service manager waits before restarting a failed node. */
const RESTART_DELAY_S = 5

export interface ServiceSpec {
  /** Absolute path of the Node.js binary. */
  node: string
  /** Absolute path of bin/donghae.js. */
  bin: string
  home: string
  passwordFile: string
  logFile: string
  /** Variables set for the node (nodeProcessVariables: the allocator). @default {} */
  env?: Readonly<Record<string, string>>
}

/** The command line the service runs. */
export function serviceCommand(spec: ServiceSpec): string[] {
  return [
    spec.node,
    ...NODE_PROCESS_FLAGS,
    spec.bin,
    '--home',
    spec.home,
    'node',
    '--password-file',
    spec.passwordFile,
    '--log-file',
    spec.logFile,
  ]
}

/** Where the service file goes for `platform`, under the user's home directory. */
export function serviceFilePath(platform: ServicePlatform, userHome: string): string {
  return platform === 'linux'
    ? join(userHome, '.config', 'systemd', 'user', SYSTEMD_UNIT)
    : join(userHome, 'Library', 'LaunchAgents', `${LAUNCHD_LABEL}.plist`)
}

/** One ExecStart word: `%` and `$` escaped (systemd specifiers and variables), quoted when needed. */
export function systemdWord(word: string): string {
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$')
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

export function systemdUnit(spec: ServiceSpec): string {
  return `# Written by \`donghae service install\`; remove it with \`donghae service uninstall\`.
[Unit]
Description=Donghae node (${spec.home.replace(/%/g, '%%')})

[Service]
Type=simple
${Object.entries(spec.env ?? {})
  .map(([name, value]) => `Environment=${systemdWord(`${name}=${value}`)}\n`)
  .join('')}ExecStart=${serviceCommand(spec).map(systemdWord).join(' ')}
Restart=on-failure
RestartSec=${RESTART_DELAY_S}
KillSignal=SIGTERM
TimeoutStopSec=30
# The node writes its own log to ${spec.logFile.replace(/%/g, '%%')} and rotates it by size (--log-file);
# the journal gets only its start and stop lines.
StandardOutput=journal
StandardError=journal

[Install]
WantedBy=default.target
`
}

function xml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;')
}

export function launchdPlist(spec: ServiceSpec): string {
  const args = serviceCommand(spec)
    .map((a) => `    <string>${xml(a)}</string>`)
    .join('\n')
  // launchd does not rotate StandardOutPath/StandardErrorPath: only start/stop lines go there,
  // the node's log is --log-file, which it rotates itself.
  const stdio = xml(join(spec.home, 'logs', 'launchd.log'))
  const variables = Object.entries(spec.env ?? {})
  const environment =
    variables.length === 0
      ? ''
      : `  <key>EnvironmentVariables</key>
  <dict>
${variables.map(([name, value]) => `    <key>${xml(name)}</key>\n    <string>${xml(value)}</string>\n`).join('')}  </dict>
`
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Written by \`donghae service install\`; remove it with \`donghae service uninstall\`. -->
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>${LAUNCHD_LABEL}</string>
  <key>ProgramArguments</key>
  <array>
${args}
  </array>
${environment}  <key>WorkingDirectory</key>
  <string>${xml(spec.home)}</string>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <dict>
    <key>SuccessfulExit</key>
    <false/>
  </dict>
  <key>ThrottleInterval</key>
  <integer>${RESTART_DELAY_S}</integer>
  <key>ProcessType</key>
  <string>Background</string>
  <key>StandardOutPath</key>
  <string>${stdio}</string>
  <key>StandardErrorPath</key>
  <string>${stdio}</string>
</dict>
</plist>
`
}

export function serviceFile(platform: ServicePlatform, spec: ServiceSpec): string {
  return platform === 'linux' ? systemdUnit(spec) : launchdPlist(spec)
}

export interface ManagerStep {
  argv: string[]
  /** A failure is expected and harmless (e.g. unloading what is not loaded). */
  mayFail?: boolean
}

/** The service-manager commands that activate, deactivate (before and after the file goes) and query the service. */
export function managerCommands(
  platform: ServicePlatform,
  file: string,
  uid: number,
): { tool: string; install: ManagerStep[]; uninstall: ManagerStep[]; afterRemove: ManagerStep[]; status: string[] } {
  if (platform === 'linux') {
    return {
      tool: 'systemctl',
      install: [
        { argv: ['systemctl', '--user', 'daemon-reload'] },
        { argv: ['systemctl', '--user', 'enable', SYSTEMD_UNIT] },
        { argv: ['systemctl', '--user', 'restart', SYSTEMD_UNIT] },
      ],
      uninstall: [{ argv: ['systemctl', '--user', 'disable', '--now', SYSTEMD_UNIT], mayFail: true }],
      afterRemove: [{ argv: ['systemctl', '--user', 'daemon-reload'] }],
      status: ['systemctl', '--user', 'is-active', SYSTEMD_UNIT],
    }
  }
  const target = `gui/${uid}`
  return {
    tool: 'launchctl',
    install: [
      { argv: ['launchctl', 'bootout', `${target}/${LAUNCHD_LABEL}`], mayFail: true },
      { argv: ['launchctl', 'bootstrap', target, file] },
    ],
    uninstall: [{ argv: ['launchctl', 'bootout', `${target}/${LAUNCHD_LABEL}`], mayFail: true }],
    afterRemove: [],
    status: ['launchctl', 'print', `${target}/${LAUNCHD_LABEL}`],
  }
}

/** The command line a service file runs (what install wrote), or undefined if it has none. */
export function parseServiceCommand(platform: ServicePlatform, text: string): string[] | undefined {
  if (platform === 'linux') {
    const line = text.split('\n').find((l) => l.startsWith('ExecStart='))
    if (line === undefined) return undefined
    const words = line.slice('ExecStart='.length).match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []
    return words.map((w) =>
      (w.startsWith('"') ? w.slice(1, -1).replace(/\\(.)/g, '$1') : w).replace(/%%/g, '%').replace(/\$\$/g, '$'),
    )
  }
  const array = /<key>ProgramArguments<\/key>\s*<array>([\s\S]*?)<\/array>/.exec(text)?.[1]
  if (array === undefined) return undefined
  return [...array.matchAll(/<string>([\s\S]*?)<\/string>/g)].map((m) =>
    (m[1] ?? '')
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&quot;/g, '"')
      .replace(/&apos;/g, "'")
      .replace(/&amp;/g, '&'),
  )
}
