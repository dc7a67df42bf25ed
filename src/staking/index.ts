/** staking: stake, unbonding, slashing, jailing, rewards — a chain module. */
export {
  stakingModule,
  validatorRecord,
  unbondingOf,
  epochOf,
  epochSet,
  validatorSetAt,
  validatorSetKey,
  retainedProofKeys,
  genesisValidatorSet,
  validatorSetFromValue,
  listValidators,
  registeredValidators,
  type ValidatorRecord,
  type UnbondingEntry,
} from './staking.ts'
