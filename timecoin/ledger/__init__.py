"""The ledger: transactions and their encoding, keys and addresses, MuHash, the UTXO state
machine, the mempool, genesis and the networks. No networking and no storage."""
