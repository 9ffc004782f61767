"""How long joining a network takes, by snapshot and by full replay.

``python -m timecoin.bench.sync [--outputs N] [--replay-sample TXS]`` builds a
node database whose UTXO set holds ``N`` outputs (default 1,000,000) and
measures, on this machine and with its load average recorded:

* **by snapshot**: the serving side cutting the set into chunks
  (``write_snapshot``: the set read in order, chunk hashes), then the joining
  side checking every chunk and rebuilding the set's MuHash
  (``SnapshotAssembly``, what a fetch from peers does with every chunk) and
  installing it (``install_snapshot``, one transaction). The transfer itself
  is not timed (64 bytes an output: 64 MB for a million; about half a second
  at 1 Gbit/s);
* **by full replay**: what a node replaying the chain does for every
  transaction that created those outputs, on a sample of ``TXS`` transfers of
  one input and ten outputs (each adds nine outputs): the stateless checks
  with the Ed25519 signature, the journal write, the fold into the UTXO
  tables with its MuHash updates. The figure for ``N`` outputs is the
  sample's rate times ``N / 9`` transactions (linear: every transaction costs
  the same). Commit certificates (one per block, 2/3 of the set's signatures)
  and block bodies come on top and are not counted.

It prints one JSON object. doc/sync.md records the figures.
"""

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import time

from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.muhash import MuHash
from timecoin.ledger.networks import DEVNET
from timecoin.ledger.snapshot import SnapshotAssembly, SnapshotManifest
from timecoin.ledger.tx import OutPoint, check_stateless, sign_transfer
from timecoin.ledger.utxo import utxo_element
from timecoin.storage import snapshot_tables
from timecoin.storage.records import encode_undo
from timecoin.storage.store import JournalRecord, Storage

FEE = 10_000


def _outputs(count):
    for i in range(count):
        txid = hashlib.blake2b(b"bench %d" % (i // 4), digest_size=32).digest()
        yield OutPoint(txid, i % 4), 1000 + i, hashlib.blake2b(b"k %d" % i,
                                                               digest_size=20).digest()


def _open(path, genesis):
    storage = Storage(None, path, inline_check_max=0)
    storage.open_now(genesis)
    return storage


def bench_snapshot(directory, genesis, count, chunk_outputs):
    source = _open(os.path.join(directory, "source.sqlite3"), genesis)
    conn = source._conn
    started = time.perf_counter()
    rows = sorted((op.txid, op.vout, amount, key_hash) for op, amount, key_hash in
                  _outputs(count))
    source._transaction(lambda: conn.executemany(
        "INSERT INTO utxos (txid, vout, amount, key_hash) VALUES (?, ?, ?, ?)", rows))
    filled = time.perf_counter() - started
    started = time.perf_counter()
    manifest = source._transaction(snapshot_tables.write_snapshot, conn,
                                   genesis.network.network_id, 1, bytes(32), chunk_outputs)
    cut = time.perf_counter() - started
    chunks = [snapshot_tables.read_chunk(conn, 1, i) for i in range(len(manifest.chunk_hashes))]
    manifest = SnapshotManifest.decode(manifest.encode())
    started = time.perf_counter()
    assembly = SnapshotAssembly(manifest)
    outputs = []
    for index, data in enumerate(chunks):
        outputs.extend(assembly.add(index, data))
    assembly.finish()
    checked = time.perf_counter() - started
    target = _open(os.path.join(directory, "joiner.sqlite3"), genesis)
    installed = snapshot_tables.InstalledSnapshot(
        manifest, outputs, assembly.muhash, (1, bytes(32), b"header", b"body", b"cert", 0.0),
        [], [])
    started = time.perf_counter()
    target._transaction(snapshot_tables.install_snapshot, target._conn, installed)
    install = time.perf_counter() - started
    source.close_now()
    target.close_now()
    return {"outputs": count, "chunks": len(chunks), "chunk_outputs": chunk_outputs,
            "bytes": sum(len(c) for c in chunks), "fill_s": round(filled, 2),
            "cut_s": round(cut, 2), "check_and_rebuild_s": round(checked, 2),
            "install_s": round(install, 2),
            "join_s": round(checked + install, 2)}


def bench_replay(directory, genesis, sample, count):
    key = PrivateKey.devnet(0)
    funding = genesis.txs[0]
    prevout, total = OutPoint(funding.txid, 0), funding.outputs[0].amount
    txs = []
    for i in range(sample):
        outputs = [(1000, hashlib.blake2b(b"r %d %d" % (i, j), digest_size=20).digest())
                   for j in range(9)]
        change = total - 9000 - FEE
        tx = sign_transfer(key, [prevout], outputs + [(change, key.key_hash)],
                           genesis.network.network_id)
        txs.append((tx, total))
        prevout, total = OutPoint(tx.txid, 9), change
    storage = _open(os.path.join(directory, "replay.sqlite3"), genesis)
    seq = storage._read_meta().last_seq
    started = time.perf_counter()
    records = []
    for tx, spent_amount in txs:
        check_stateless(tx, genesis.network.network_id)
        seq += 1

        class Spent:
            amount, key_hash = spent_amount, key.key_hash
        records.append(JournalRecord(seq, tx.txid, tx.raw, encode_undo([Spent]), 0.0, None))
        if len(records) == 500:
            storage._append_now(records)
            storage.apply_journal_now(seq)
            records = []
    if records:
        storage._append_now(records)
        storage.apply_journal_now(seq)
    elapsed = time.perf_counter() - started
    storage.close_now()
    per_tx = elapsed / sample
    return {"sample_txs": sample, "sample_s": round(elapsed, 2),
            "per_tx_ms": round(per_tx * 1000, 3), "txs_for_outputs": -(-count // 9),
            "join_s_extrapolated": round(per_tx * -(-count // 9), 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=int, default=1_000_000)
    parser.add_argument("--replay-sample", type=int, default=5_000)
    parser.add_argument("--chunk-outputs", type=int, default=4096)
    args = parser.parse_args(argv)
    genesis = make_genesis(DEVNET)
    directory = tempfile.mkdtemp(prefix="timecoin-bench-sync-")
    try:
        load_before = os.getloadavg()
        snapshot = bench_snapshot(directory, genesis, args.outputs, args.chunk_outputs)
        replay = bench_replay(directory, genesis, args.replay_sample, args.outputs)
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    muhash = MuHash()
    started = time.perf_counter()
    for outpoint, amount, key_hash in _outputs(10_000):
        muhash.add(utxo_element(outpoint, amount, key_hash))
    print(json.dumps({
        "snapshot": snapshot, "replay": replay,
        "muhash_add_us": round((time.perf_counter() - started) / 10_000 * 1e6, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
    }, indent=2))


if __name__ == "__main__":
    main()
