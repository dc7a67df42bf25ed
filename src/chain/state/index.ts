/** chain/state: the state root (a sparse Merkle tree over key -> value bytes) and its light-client proofs. */
export { SparseMerkleTree, type StateChange, type StateEntry } from './smt.ts'
export { verifyProof, encodeProof, decodeProof, MAX_PROOF_SIBLINGS, MAX_PROOF_BYTES, type StateProof } from './proof.ts'
export { StateProofError } from './errors.ts'
