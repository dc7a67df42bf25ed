/** Errors of the network simulations. */
import { DonghaeError } from '../../core/errors.ts'

/** Simulation options out of range; `details.option` names the option. */
export class SimulationOptionsError extends DonghaeError {
  static override readonly code: string = 'SIM_OPTIONS_INVALID'
  override name = 'SimulationOptionsError'
}

/** The simulated network could not be built (a node without an address, a join that found no peer). */
export class SimulationError extends DonghaeError {
  static override readonly code: string = 'SIM_FAILED'
  override name = 'SimulationError'
}
