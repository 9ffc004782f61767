"""Finality proofs: self-contained evidence that a transaction is in a committed
block, checkable offline by anyone who knows only the network's genesis.

This package sits above the ledger (headers, Merkle paths, genesis, keys) and
the consensus cores (commit certificates, validator sets), and imports no
Twisted and no storage: a wallet or a command-line tool can use it alone.
:mod:`timecoin.proofs.finality` holds the proof, its canonical encoding and
its verification; doc/proofs.md describes both byte for byte.
"""
