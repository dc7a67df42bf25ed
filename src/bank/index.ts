/** bank: balances, transfers and fees - a chain module. */
export {
  bankModule,
  feeCollector,
  balanceOf,
  totalSupply,
  feePool,
  credit,
  debit,
  mint,
  burn,
  mintUnassigned,
  takeFeePool,
  MAX_MEMO_BYTES,
  type TransferBody,
} from './bank.ts'
