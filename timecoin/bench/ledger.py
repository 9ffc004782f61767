"""Ledger benchmark: the validation pipeline, the UTXO store and one devnet node.

Prints, in one run on one machine:

1. the validation pipeline's transactions per second (``Node.submit_raw``
   in-process: decode, stateless checks with Ed25519 verification, UTXO
   checks, mempool admission, locking) against raw PyNaCl verifies per second,
   with signatures verified inline and then by worker processes as a daemon
   verifies them;
2. the rows per second the store writes when ``Storage.apply_journal`` folds
   journal entries into the UTXO table, against raw ``sqlite3.executemany``
   on an equivalent table with the same pragmas and batch size;
3. a real devnet daemon's finalized transactions per second at saturation and
   its finality p50/p99 at 1,000 tx/s offered, driven over JSON-RPC.

Every transaction is signed before timing. Run with::

    .venv/bin/python -m timecoin.bench.ledger [--quick] [--workers N] [--daemon-workers N]
"""

import argparse
import gc
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time

import nacl.signing
from twisted.internet import defer, task
from twisted.python.failure import Failure

from timecoin.bench.loadgen import Daemon, Funds, rpc_ok, submit_and_wait  # noqa: E402
from timecoin.bench.plan import ACCEPTED  # noqa: E402
from timecoin.node.assembly import NodeOptions, prepare  # noqa: E402
from timecoin.node.service import Node  # noqa: E402
from timecoin.node.verify import ProcessVerifier  # noqa: E402
from timecoin.testing.fakes import ManualFinality, SyncStorage  # noqa: E402

SCHEMA = """
CREATE TABLE utxos (txid BLOB NOT NULL, vout INTEGER NOT NULL, amount INTEGER NOT NULL,
                    key_hash BLOB NOT NULL, PRIMARY KEY (txid, vout)) WITHOUT ROWID;
CREATE INDEX utxos_by_key_hash ON utxos (key_hash);
"""


#: Each comparison alternates its two sides in this many rounds.
ROUNDS = 4
#: Transactions per alternating round of the pipeline comparison.
PIPELINE_ROUND = 500


def rate(n, seconds):
    return n / seconds if seconds > 0 else float("inf")


# -- 1. the validation pipeline ------------------------------------------------------


def in_process_node(datadir):
    """A devnet node as tests/support.py ``sync_node`` builds it: storage on the
    calling thread, a manual clock and finality decided by the caller."""
    clock = task.Clock()
    prepared = prepare(NodeOptions(datadir=datadir, api="tcp:0:interface=127.0.0.1"))
    storage = SyncStorage(clock, os.path.join(datadir, "chain.sqlite3"))
    meta = storage.open_now(prepared.genesis)
    finality = ManualFinality()
    node = Node(clock, prepared.network, prepared.genesis, prepared.config, storage, meta,
                prepared.identity, finality=finality)
    return node, finality, storage


def submit_all(node, raws):
    """Submit as if relayed by a peer (the node's back-pressure bound on its own
    submissions does not apply: nothing is decided while timing); fire once
    every transaction is admitted (one counter, lighter than gatherResults)."""
    failures = []
    left = [len(raws)]
    done = defer.Deferred()

    def settled(result):
        if isinstance(result, Failure):
            failures.append(result)
        left[0] -= 1
        if not left[0]:
            if failures:
                done.errback(RuntimeError(f"{len(failures)} rejected, first: "
                                          f"{failures[0].value}"))
            else:
                done.callback(None)

    for raw in raws:
        node.submit_raw(raw, from_peer=True).addBoth(settled)
    return done


@defer.inlineCallbacks
def compare_with_pynacl(node, spends):
    """Submit ``spends`` in alternating rounds with as many raw PyNaCl verifies.

    Both sides see the same machine, whose speed drifts over seconds: each
    round gives one ratio, and the median of them is reported.
    """
    n = len(spends)
    raws = [tx.raw for tx in spends]
    items = [(nacl.signing.VerifyKey(tx.inputs[0].pubkey), tx.sighash(),
              tx.inputs[0].signature) for tx in spends]
    pipeline = raw_verify = 0.0
    ratios = []
    for start in range(0, n, PIPELINE_ROUND):
        gc.collect()
        t0 = time.perf_counter()
        for vk, message, signature in items[start:start + PIPELINE_ROUND]:
            vk.verify(message, signature)
        t1 = time.perf_counter()
        yield submit_all(node, raws[start:start + PIPELINE_ROUND])
        t2 = time.perf_counter()
        pipeline += t2 - t1
        raw_verify += t1 - t0
        ratios.append((t1 - t0) / (t2 - t1))
    return rate(n, pipeline), rate(n, raw_verify), statistics.median(ratios), len(ratios)


@defer.inlineCallbacks
def bench_pipeline(reactor, node, finality, funds, n, workers):
    """The pipeline with signatures verified inline, then on ``workers``
    worker processes as a daemon does (the same node, its verifier swapped)."""
    fanouts = funds.fanouts[: -(-2 * n // 500)]
    yield submit_all(node, [f.raw for f in fanouts])
    for f in fanouts:
        finality.decide(f.txid, True)
    node.flush()
    inline, with_workers = funds.spends[:n], funds.spends[n:2 * n]
    print(f"[1] pipeline: {n} txs (1 input, 1 output each) through Node.submit_raw, "
          f"against raw PyNaCl")
    print(f"    (alternating rounds of {PIPELINE_ROUND}; ratio = median of the rounds)")
    results = [(yield compare_with_pynacl(node, inline))]
    node.verifier = ProcessVerifier(reactor, workers)
    node.verifier.start()
    yield node.verifier.ready()
    try:
        results.append((yield compare_with_pynacl(node, with_workers)))
    finally:
        yield node.verifier.stop()
    assert node.mempool.size == 2 * n, node.mempool.size
    labels = ("verified inline (one thread)",
              f"verified by {workers} worker processes (signature_workers = {workers}, "
              "the default)")
    for label, (p, v, ratio, rounds) in zip(labels, results, strict=True):
        print(f"    {label}:")
        print(f"      pipeline      {p:10,.0f} tx/s   raw PyNaCl {v:10,.0f} verifies/s "
              f"(VerifyKey built before timing)")
        print(f"      ratio         {ratio:10.2f}   (goal >= 0.7; over {rounds} rounds; "
              f"totals give {p / v:.2f})")
    return inline + with_workers


# -- 2. the store's batched UTXO writes ----------------------------------------------


def raw_db(path, prior):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(SCHEMA)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO utxos VALUES (?, ?, ?, ?)", prior)
    conn.execute("COMMIT")
    return conn


def timed_write(conn, statements):
    t0 = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    for sql, rows in statements:
        conn.executemany(sql, rows)
    conn.execute("COMMIT")
    return time.perf_counter() - t0


def copy_storage(storage, path):
    """A second storage on a copy of ``storage``'s database (journal not applied)."""
    dest = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    storage._conn.backup(dest)
    dest.execute("PRAGMA journal_mode=WAL")
    dest.execute("PRAGMA synchronous=FULL")
    copy = SyncStorage(storage._reactor, path)
    copy._conn = dest
    return copy


def timed_apply(storage, target, summary):
    conn = storage._conn
    before = conn.total_changes
    t0 = time.perf_counter()
    storage.apply_journal_now(target, summary)
    return time.perf_counter() - t0, conn.total_changes - before


def bench_store(node, finality, storage, spends, tmp):
    n = len(spends)
    seq0 = node.journal.committed_seq
    for tx in spends:
        finality.decide(tx.txid, True)
    prior = [(op.txid, op.vout, amount, key_hash)
             for op, amount, key_hash in storage._load_now([t.inputs[0].prevout for t in spends])]
    created = [(tx.txid, 0, tx.outputs[0].amount, tx.outputs[0].key_hash) for tx in spends]
    insert = "INSERT INTO utxos (txid, vout, amount, key_hash) VALUES (?, ?, ?, ?)"
    copy = copy_storage(storage, os.path.join(tmp, "copy.sqlite3"))
    c1 = raw_db(os.path.join(tmp, "raw1.sqlite3"), prior)
    c2 = raw_db(os.path.join(tmp, "raw2.sqlite3"), prior)
    times = {"summary": 0.0, "recompute": 0.0, "insert": 0.0, "same": 0.0}
    rows = 0
    step = -(-n // ROUNDS)
    for start in range(0, n, step):
        end = min(start + step, n)
        target = seq0 + end
        gc.collect()
        t, _ = timed_apply(copy, target, None)
        times["recompute"] += t
        t, written = timed_apply(storage, target, node.state.summary_at(target))
        times["summary"] += t
        rows += written
        fresh = [(os.urandom(32), i % 500, 10**9 + i, os.urandom(20)) for i in range(written)]
        times["insert"] += timed_write(c1, [(insert, fresh)])
        times["same"] += timed_write(c2, [
            ("DELETE FROM utxos WHERE txid = ? AND vout = ?", [r[:2] for r in prior[start:end]]),
            (insert, created[start:end])])
    assert meta_of(copy) == meta_of(storage), "the two folds differ"
    for conn in (copy._conn, c1, c2):
        conn.close()
    a, b = rate(rows, times["summary"]), rate(rows, times["recompute"])
    ri, rs = rate(rows, times["insert"]), rate(2 * n, times["same"])
    batch = f"{step} entries a batch"
    print(f"[2] store: apply_journal folds {n} journal entries, {batch} (one commit each)")
    print(f"    ({n} deletes + {n} inserts into utxos + 4 meta updates a batch = {rows} rows)")
    print(f"    apply_journal   {a:10,.0f} rows/s  (set hash given by the state machine)")
    print(f"    raw executemany {ri:10,.0f} rows/s  (as many INSERTs, same batches)")
    print(f"    ratio           {a / ri:10.2f}   (goal >= 0.7)")
    print(f"    raw same writes {rs:10,.0f} rows/s  (the same DELETEs + INSERTs; "
          f"ratio {a / rs:.2f})")
    print(f"    apply_journal   {b:10,.0f} rows/s  (set hash recomputed per element, as at "
          f"start-up replay; ratio {b / ri:.2f})")


def meta_of(storage):
    return dict(storage._conn.execute("SELECT key, value FROM meta"))


# -- 3. one devnet daemon -------------------------------------------------------------


@defer.inlineCallbacks
def send_and_wait(client, txs):
    """One JSON-RPC batch: ``sendrawtransaction`` for each tx then
    ``waitfortransaction`` for each; fires once every one is final."""
    calls = [("sendrawtransaction", [tx.hex()]) for tx in txs]
    calls += [("waitfortransaction", [tx.txid.hex(), 60]) for tx in txs]
    results = yield client.batch(calls).addCallback(rpc_ok)
    statuses = results[len(txs):]
    bad = [s for s in statuses if s["status"] not in ACCEPTED]
    if bad:
        raise RuntimeError(f"{len(bad)} transactions not finalized: {bad[0]}")
    return statuses


@defer.inlineCallbacks
def saturation(client, txs, batch, depth):
    chunks = [txs[i:i + batch] for i in range(0, len(txs), batch)]

    @defer.inlineCallbacks
    def worker():
        while chunks:
            yield send_and_wait(client, chunks.pop(0))

    t0 = time.perf_counter()
    yield defer.gatherResults([worker() for _ in range(depth)], consumeErrors=True)
    return rate(len(txs), time.perf_counter() - t0)


@defer.inlineCallbacks
def finalized_count(reactor, url):
    """The node's ``timecoin_tx_finalized_total`` from /metrics."""
    import treq

    response = yield treq.get(url + "/metrics", persistent=False, reactor=reactor)
    text = yield response.text()
    for line in text.splitlines():
        if line.startswith("timecoin_tx_finalized_total "):
            return int(float(line.split()[1]))
    raise RuntimeError("no timecoin_tx_finalized_total in /metrics")


@defer.inlineCallbacks
def saturation_fire(reactor, client, url, txs, batch, depth):
    """Senders that do not wait per transaction: batches of ``sendrawtransaction``
    only, ``depth`` in flight; finality counted by the node's finalized counter
    (polled every 20 ms), then every transaction checked finalized (untimed)."""
    start_count = yield finalized_count(reactor, url)
    chunks = [txs[i:i + batch] for i in range(0, len(txs), batch)]

    @defer.inlineCallbacks
    def worker():
        while chunks:
            chunk = chunks.pop(0)
            yield client.batch([("sendrawtransaction", [tx.hex()]) for tx in chunk]
                               ).addCallback(rpc_ok)

    t0 = time.perf_counter()
    yield defer.gatherResults([worker() for _ in range(depth)], consumeErrors=True)
    while (yield finalized_count(reactor, url)) - start_count < len(txs):
        yield task.deferLater(reactor, 0.02, lambda: None)
    elapsed = time.perf_counter() - t0
    for i in range(0, len(txs), 1000):
        statuses = yield client.batch([("gettransaction", [tx.txid.hex()])
                                       for tx in txs[i:i + 1000]]).addCallback(rpc_ok)
        bad = [st for st in statuses if st["status"] not in ACCEPTED]
        if bad:
            raise RuntimeError(f"{len(bad)} transactions not finalized: {bad[0]}")
    return rate(len(txs), elapsed)


@defer.inlineCallbacks
def steady(reactor, client, txs, offered, interval):
    """Offer ``offered`` tx/s in batches every ``interval`` s; per-tx latencies."""
    queue = list(txs)
    client_ms, node_ms, pending = [], [], []
    start = time.perf_counter()
    state = {"sent": 0}

    def tick():
        due = int(offered * (time.perf_counter() - start)) - state["sent"]
        batch, queue[:] = queue[:due], queue[due:]
        if not batch:
            if not queue:
                loop.stop()
            return
        state["sent"] += len(batch)
        t_send = time.perf_counter()

        def done(statuses):
            elapsed = (time.perf_counter() - t_send) * 1000.0
            client_ms.extend([elapsed] * len(statuses))
            node_ms.extend(s["finality_ms"] for s in statuses)
        for i in range(0, len(batch), 500):  # a late tick catches up in batches of 500
            pending.append(send_and_wait(client, batch[i:i + 500]).addCallback(done))

    loop = task.LoopingCall(tick)
    loop.clock = reactor
    yield loop.start(interval)
    yield defer.gatherResults(pending, consumeErrors=True)
    achieved = rate(len(txs), time.perf_counter() - start)
    return achieved, client_ms, node_ms


def pct(values, p):
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


@defer.inlineCallbacks
def bench_daemon(reactor, funds, n_sat, n_lat, args):
    config = ("" if args.daemon_workers is None
              else f"[validation]\nsignature_workers = {args.daemon_workers}\n")
    daemon = yield Daemon(reactor, config).start()
    try:
        t0 = time.perf_counter()
        fanouts = funds.fanouts[: -(-(n_sat + n_lat) // 500)]
        yield submit_and_wait(daemon.client, fanouts)
        print(f"[3] devnet daemon: {len(fanouts)} fan-outs finalized in "
              f"{time.perf_counter() - t0:.1f} s")
        spends = funds.spends[: n_sat + n_lat]
        half = n_sat // 2
        sat = yield saturation(daemon.client, spends[:half], args.batch, args.depth)
        print(f"    saturation      {sat:10,.0f} finalized tx/s  ({half} txs, batches of "
              f"{args.batch} sends + {args.batch} waits, {args.depth} in flight; goal >= 3,000)")
        fire = yield saturation_fire(reactor, daemon.client, daemon.url, spends[half:n_sat],
                                     args.batch, args.depth)
        print(f"    saturation      {fire:10,.0f} finalized tx/s  ({n_sat - half} txs, batches "
              f"of {args.batch} sends, {args.depth} in flight, finality counted by the node's "
              "metrics; goal >= 3,000)")
        achieved, client_ms, node_ms = yield steady(reactor, daemon.client, spends[n_sat:],
                                                    args.rate, 0.01)
        print(f"    steady load     {achieved:10,.0f} tx/s achieved of {args.rate} offered "
              f"({n_lat} txs, a batch every 10 ms)")
        print(f"    finality (client: send -> waitfortransaction answer) "
              f"p50 {pct(client_ms, 50):.1f} ms, p99 {pct(client_ms, 99):.1f} ms (goal p50 <= 20)")
        print(f"    finality (node's finality_ms: admission -> decision) "
              f"p50 {pct(node_ms, 50):.2f} ms, p99 {pct(node_ms, 99):.2f} ms")
    finally:
        yield daemon.stop()
    print(f"    daemon stopped (exit status {daemon.proc.exit_code})")


@defer.inlineCallbacks
def main(reactor, args):
    n_pipe = 2_000 if args.quick else 10_000
    n_sat = 6_000 if args.quick else 30_000
    n_lat = args.rate * (3 if args.quick else 10)
    t0 = time.perf_counter()
    funds = Funds(max(2 * n_pipe, n_sat + n_lat))
    print(f"signed {len(funds.fanouts)} fan-outs and {len(funds.spends)} spends in "
          f"{time.perf_counter() - t0:.1f} s (not timed below)")
    tmp = tempfile.mkdtemp(prefix="timecoin-bench-")
    try:
        node, finality, storage = in_process_node(tmp)
        spends = yield bench_pipeline(reactor, node, finality, funds, n_pipe, args.workers)
        bench_store(node, finality, storage, spends, tmp)
        storage._close_now()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not args.skip_daemon:
        yield bench_daemon(reactor, funds, n_sat, n_lat, args)


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer transactions (~30 s)")
    p.add_argument("--batch", type=int, default=500, help="txs per batch at saturation")
    p.add_argument("--depth", type=int, default=4, help="batches in flight at saturation")
    p.add_argument("--rate", type=int, default=1000, help="tx/s offered for the finality figure")
    p.add_argument("--workers", type=int, default=2,
                   help="signature workers for the pipeline's second figure")
    p.add_argument("--daemon-workers", type=int, default=None,
                   help="the daemon's signature_workers (default: its preset)")
    p.add_argument("--skip-daemon", action="store_true", help="only the in-process parts")
    return p.parse_args(argv)


if __name__ == "__main__":
    task.react(main, [parse(sys.argv[1:])])
