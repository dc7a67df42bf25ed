import { DonghaeError } from '../core/errors.ts'

/** A CLI failure with a message already written for the person at the terminal. */
export class CliError extends DonghaeError {
  static override readonly code: string = 'CLI_ERROR'
  override name = 'CliError'
}

/** The home directory is missing or already initialized, depending on the command. */
export class HomeStateError extends CliError {
  static override readonly code: string = 'HOME_STATE'
  override name = 'HomeStateError'
}
