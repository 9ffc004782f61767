"""Benchmarks: the ``timecoin bench`` load generator and the ledger and wire benchmarks
(``python -m timecoin.bench.ledger``, ``python -m timecoin.bench.wire``)."""
