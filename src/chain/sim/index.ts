/** chain/sim: seeded adversarial schedules for the consensus engine on a simulated clock. */
export {
  runSchedule,
  runSchedules,
  drawPlan,
  checkScheduleOptions,
  BYZANTINE_BEHAVIOURS,
  type ByzantineBehaviour,
  type ScheduleOptions,
  type SchedulePlan,
  type ScheduleResult,
  type ScheduleStats,
  type RunSchedulesOptions,
  type Summary,
  type Violation,
  type ViolationKind,
} from './simulator.ts'
export { SimClock } from './scheduler.ts'
export { createRng, type Rng } from '../../core/rng.ts'
export {
  SimChainApp,
  encodeSimBlock,
  decodeSimBlock,
  simBlockId,
  checkSimBlock,
  makeSimBlock,
  ticksRequired,
  BLOCK_DEFECTS,
  type SimBlock,
  type SimChainParams,
  type BlockDefect,
} from './app.ts'
