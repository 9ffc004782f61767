"""The operator metrics of issue 13: each moves when its event happens.

Peer traffic, rate-limit hits and connection churn on a memory node; the
relay's and the UTXO set's caches; storage operation latency and WAL
checkpoints, recorded on the writer thread; and all of them in a node's
/metrics text.
"""

import os
import threading
import time

from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.p2p_fakes import make_tx
from tests.support import devnet_funding, make_datadir, sync_node, transfer
from tests.test_p2p_limits import ReadyPeers
from tests.test_p2p_states import written
from tests.test_storage import GENESIS, record
from timecoin.ledger.tx import OutPoint
from timecoin.ledger.utxo import UtxoEntry, UtxoSet
from timecoin.node.metrics import _labelled
from timecoin.p2p import messages as m
from timecoin.p2p import protocol
from timecoin.p2p.framing import encode_frame
from timecoin.storage.store import Storage
from timecoin.storage.timings import (
    OPERATIONS,
    STORAGE_BUCKETS,
    CheckpointSchedule,
    StorageTimings,
)
from timecoin.testing.fakes import ManualFinality, SyncStorage


def samples(service, name):
    """``{frozenset(labels): value}`` of one metric of ``service.statistics()``."""
    [found] = [s for n, _, _, s in service.statistics() if n == name]
    return {frozenset(labels.items()): value for labels, value in found}


def sample(service, name, **labels):
    return samples(service, name).get(frozenset(labels.items()), 0)


class PeerTrafficMetrics(ReadyPeers):
    def test_messages_and_bytes_by_kind_and_direction(self):
        service = self.node.service
        peer = self.ready_peer()
        self.assertEqual(sample(service, "timecoin_p2p_messages_total", kind="hello",
                                direction="in"), 1)
        self.assertEqual(sample(service, "timecoin_p2p_messages_total", kind="hello",
                                direction="out"), 1)
        self.assertEqual(sample(service, "timecoin_p2p_messages_total", kind="auth",
                                direction="in"), 1)
        before_in = sample(service, "timecoin_p2p_message_bytes_total", kind="ping",
                           direction="in")
        pongs = sample(service, "timecoin_p2p_messages_total", kind="pong", direction="out")
        frame = encode_frame(m.Ping(5))
        peer.dataReceived(frame * 3)
        self.assertEqual(sample(service, "timecoin_p2p_messages_total", kind="ping",
                                direction="in"), 3)
        self.assertEqual(sample(service, "timecoin_p2p_message_bytes_total", kind="ping",
                                direction="in"), before_in + 3 * len(frame))
        self.assertEqual(sample(service, "timecoin_p2p_messages_total", kind="pong",
                                direction="out"), pongs + 3)
        self.assertEqual(sample(service, "timecoin_p2p_message_bytes_total", kind="pong",
                                direction="out"),
                         (pongs + 3) * len(encode_frame(m.Pong(5))))
        # Frames encoded once for many peers are counted too (the relay's inv).
        service.broadcast_tx(make_tx(3))
        self.assertEqual(sample(service, "timecoin_p2p_messages_total", kind="inv",
                                direction="out"), 1)
        self.assertEqual(m.Inv((make_tx(3).txid,)), written(peer)[-1])

    def test_handler_cpu_by_kind(self):
        service = self.node.service
        peer = self.ready_peer()
        ticks = iter(range(1000))
        self.patch(protocol, "thread_time", lambda: next(ticks) * 0.25)
        peer.dataReceived(encode_frame(m.Ping(7)) * 3)
        # Each handler call: one reading before, one after, 0.25 s apart.
        self.assertEqual(sample(service, "timecoin_p2p_handler_cpu_seconds_total",
                                kind="ping"), 0.75)

    def test_rate_limit_hits_by_kind_and_action(self):
        service = self.node.service
        peer = self.ready_peer()
        # getaddr: a burst of 3, then dropped (not banned).
        peer.dataReceived(encode_frame(m.GetAddr()) * 5)
        self.assertEqual(sample(service, "timecoin_p2p_rate_limited_total", kind="getaddr",
                                action="drop"), 2)
        self.assertFalse(peer.closing)
        # ping: a flood bans the peer at the first empty bucket.
        peer.dataReceived(encode_frame(m.Ping(1)) * int(4 * service.config.rate_limit_ping + 1))
        self.assertTrue(peer.closing)
        self.assertEqual(sample(service, "timecoin_p2p_rate_limited_total", kind="ping",
                                action="ban"), 1)

    def test_connections_opened_and_closed(self):
        service = self.node.service
        self.assertEqual(sample(service, "timecoin_peer_connections_opened_total",
                                direction="inbound"), 0)
        peer = self.ready_peer()
        self.assertEqual(sample(service, "timecoin_peer_connections_opened_total",
                                direction="inbound"), 1)
        self.assertEqual(sample(service, "timecoin_peer_connections_closed_total",
                                direction="inbound"), 0)
        peer.drop("test")
        peer.connectionLost(None)
        self.assertEqual(sample(service, "timecoin_peer_connections_closed_total",
                                direction="inbound"), 1)
        self.assertEqual(sample(service, "timecoin_peer_connections_opened_total",
                                direction="outbound"), 0)

    def test_relay_cache_hits_and_misses(self):
        service = self.node.service
        peer = self.ready_peer()
        announced, stored = make_tx(1), make_tx(2)
        service.broadcast_tx(announced)
        self.node.host.txs[stored.txid] = stored.raw
        peer.dataReceived(encode_frame(m.GetData((announced.txid, stored.txid))))
        self.assertEqual(written(peer)[-2:], [m.TxMessage(announced.raw),
                                              m.TxMessage(stored.raw)])
        self.assertEqual(sample(service, "timecoin_relay_cache_lookups_total", result="hit"), 1)
        self.assertEqual(sample(service, "timecoin_relay_cache_lookups_total", result="miss"),
                         1)

    def test_exported_with_bounded_labels(self):
        service = self.node.service
        self.ready_peer()

        class Collector:
            def collect(self):
                return _labelled(service.statistics())

        registry = CollectorRegistry()
        registry.register(Collector())
        text = generate_latest(registry).decode()
        self.assertIn('timecoin_p2p_messages_total{direction="in",kind="hello"} 1.0', text)
        self.assertIn('timecoin_peer_connections_opened_total{direction="inbound"} 1.0', text)
        kinds = set(m.KIND_NAMES.values())
        for line in text.splitlines():
            if line.startswith("timecoin_p2p_") and "kind=" in line:
                self.assertIn(line.split('kind="')[1].split('"')[0], kinds)
                self.assertNotIn("127.0.0.1", line)


class UtxoCacheMetrics(unittest.TestCase):
    def test_lookups_and_evictions(self):
        state = UtxoSet(Clock(), cache_entries=2)
        ops = [OutPoint(bytes([n]) * 32, 0) for n in range(4)]
        state.load([(op, 100, bytes(20)) for op in ops[:2]])
        self.assertEqual(state.missing(ops[:3]), [ops[2]])
        self.assertEqual((state.cache_hits, state.cache_misses), (2, 1))
        state.load([(ops[2], 100, bytes(20)), (ops[3], 100, bytes(20))])
        state.trim()
        self.assertEqual((state.cache_evictions, len(state)), (2, 2))
        self.assertEqual(state.missing(ops), ops[:2])
        self.assertEqual((state.cache_hits, state.cache_misses), (4, 3))


class TimingHistograms(unittest.TestCase):
    def test_buckets_are_cumulative_and_consistent(self):
        timings = StorageTimings()
        timings.record("journal_commit", 0.0003)
        timings.record("journal_commit", 0.002)
        timings.record("journal_commit", 60.0)
        timings.checkpointed(12, 20, 0.004)
        snap = timings.snapshot()
        commit = snap.operations["journal_commit"]
        self.assertEqual(len(commit.buckets), len(STORAGE_BUCKETS) + 1)
        self.assertEqual(commit.buckets[STORAGE_BUCKETS.index(0.00025)], 0)
        self.assertEqual(commit.buckets[STORAGE_BUCKETS.index(0.0005)], 1)
        self.assertEqual(commit.buckets[STORAGE_BUCKETS.index(0.0025)], 2)
        self.assertEqual(commit.buckets[-2:], (2, 3))
        self.assertAlmostEqual(commit.sum, 60.0023)
        self.assertEqual(snap.operations["tx_read"].buckets[-1], 0)
        self.assertEqual((snap.checkpoints, snap.checkpoint_pages, snap.wal_pages), (1, 12, 20))
        self.assertEqual(set(snap.operations), set(OPERATIONS))


class CheckpointScheduleTests(unittest.TestCase):
    def test_next_checkpoint_follows_the_wal_growth(self):
        schedule = CheckpointSchedule(100.0, least=1.0, most=30.0, pages=1000)
        self.assertFalse(schedule.due(100.5))
        self.assertTrue(schedule.due(101.0))
        schedule.ran(102.0, 500)  # 250 pages/s: 1000 more in 4 s
        self.assertFalse(schedule.due(105.9))
        self.assertTrue(schedule.due(106.0))
        schedule.ran(106.0, 40_000)  # 10,000 pages/s: as soon as allowed
        self.assertEqual(schedule.next, 107.0)
        schedule.ran(107.0, 0)  # idle: at the latest
        self.assertEqual(schedule.next, 137.0)


class _ThreadNoting(StorageTimings):
    """Notes the thread each duration is recorded on."""

    def __init__(self):
        super().__init__()
        self.threads = set()

    def record(self, operation, seconds):
        self.threads.add(threading.current_thread().name)
        super().record(operation, seconds)

    def checkpointed(self, pages, wal_pages, seconds):
        self.threads.add(threading.current_thread().name)
        super().checkpointed(pages, wal_pages, seconds)


class StorageTimingMetrics(unittest.TestCase):
    def spend_record(self, seq, index=4):
        key, op, amount = devnet_funding(index)
        tx = transfer(key, [op], [(amount - 5000, key.key_hash)], fee=5000)
        return record(seq, tx, [UtxoEntry(op, amount, key.key_hash)])

    @defer.inlineCallbacks
    def test_recorded_on_the_writer_thread(self):
        storage = Storage(reactor, os.path.join(make_datadir(self), "chain.sqlite3"),
                          checkpoint_schedule=CheckpointSchedule(0.0, least=0, most=0))
        storage.timings = _ThreadNoting()
        meta = yield storage.open(GENESIS)
        self.addCleanup(storage.close)
        before = storage.timing_snapshot()
        yield storage.append_journal([self.spend_record(meta.last_seq + 1)])
        yield storage.apply_journal(meta.last_seq + 1)
        yield storage.get_transaction(b"\x00" * 32)
        after = storage.timing_snapshot()
        for operation in ("journal_commit", "utxo_flush", "tx_read"):
            self.assertEqual(after.operations[operation].buckets[-1]
                             - before.operations[operation].buckets[-1], 1, operation)
        self.assertGreater(after.operations["journal_commit"].sum, 0)
        # A checkpoint after each of the two commits (interval 0), none after the read.
        self.assertEqual(after.checkpoints - before.checkpoints, 2)
        self.assertGreater(after.checkpoint_pages, before.checkpoint_pages)
        self.assertGreater(after.wal_pages, 0)
        self.assertTrue(storage.timings.threads)
        self.assertEqual({t for t in storage.timings.threads if "timecoin-db" not in t}, set())

    def test_checkpoints_wait_for_their_interval(self):
        path = os.path.join(make_datadir(self), "chain.sqlite3")
        storage = SyncStorage(None, path, checkpoint_schedule=CheckpointSchedule(
            time.monotonic(), least=3600, most=3600))
        meta = storage.open_now(GENESIS)
        self.addCleanup(storage._close_now)
        storage.append_journal([self.spend_record(meta.last_seq + 1)])
        self.assertEqual(storage.timing_snapshot().checkpoints, 0)
        # SQLite's own checkpoint is off: the WAL keeps the commit until ours runs.
        self.assertGreater(os.path.getsize(path + "-wal"), 0)
        storage.checkpoints.next = 0.0
        storage.append_journal([self.spend_record(meta.last_seq + 2, index=5)])
        self.assertEqual(storage.timing_snapshot().checkpoints, 1)


class NodeExposition(unittest.TestCase):
    def test_node_metrics_move_with_a_finalization(self):
        finality = ManualFinality()
        node = sync_node(self, Clock(), finality=finality)
        node.startService()
        self.addCleanup(node.stopService)
        registry = node.metrics.registry

        def value(name, **labels):
            return registry.get_sample_value(name, labels) or 0

        commits = value("timecoin_storage_operation_seconds_count", operation="journal_commit")
        misses = value("timecoin_utxo_cache_lookups_total", result="miss")
        key, op, amount = devnet_funding(0)
        tx = transfer(key, [op], [(amount - 5000, key.key_hash)], fee=5000)
        node.submit(tx)
        # The genesis output is not in memory yet: read from storage.
        self.assertEqual(value("timecoin_utxo_cache_lookups_total", result="miss"), misses + 1)
        self.assertEqual(value("timecoin_storage_operation_seconds_count",
                               operation="utxo_read"), 1)
        finality.decide(tx.txid, True)
        self.assertEqual(value("timecoin_storage_operation_seconds_count",
                               operation="journal_commit"), commits + 1)
        self.assertEqual(value("timecoin_storage_operation_seconds_bucket",
                               operation="journal_commit", le="+Inf"), commits + 1)
        text = generate_latest(registry).decode()
        for name in ("timecoin_storage_wal_checkpoints_total",
                     "timecoin_storage_wal_checkpoint_pages_total",
                     "timecoin_storage_wal_checkpoint_seconds_bucket",
                     "timecoin_storage_wal_pages", "timecoin_utxo_cache_evictions_total",
                     "timecoin_process_heap_bytes"):
            self.assertIn(name, text)
