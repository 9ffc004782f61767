"""Group commit of the finality journal, and what a full disk does to it."""

import sqlite3

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.support import devnet_funding, sync_node, transfer
from timecoin.storage.journal import JournalWriter


class FlakyStorage:
    """Commits on demand; fails with a full disk while ``full`` is set."""

    def __init__(self):
        self.batches = []
        self.pending = []
        self.full = False

    def append_journal(self, records):
        d = defer.Deferred()
        self.pending.append((records, d))
        return d

    def save_block(self, block_row, records, confirmed_txids, masternode_rows=None,
                   active_set=None):
        d = defer.Deferred()
        self.pending.append((records, d, block_row[0]))
        return d

    def complete(self):
        records, d, *block = self.pending.pop(0)
        if self.full:
            d.errback(sqlite3.OperationalError("database or disk is full"))
        else:
            self.batches.append([r.seq for r in records] + [f"block {h}" for h in block])
            d.callback(len(records))


class Rec:
    def __init__(self, seq):
        self.seq = seq
        self.txid = b"%d" % seq


class JournalWriterTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.storage = FlakyStorage()
        self.committed = []
        self.journal = JournalWriter(self.clock, self.storage, self.committed.extend)

    def test_records_queued_during_a_commit_go_together(self):
        done = [self.journal.append(Rec(1))]
        done += [self.journal.append(Rec(n)) for n in (2, 3, 4)]
        self.storage.complete()
        self.assertTrue(done[0].called)
        self.assertFalse(done[1].called)
        self.storage.complete()
        self.assertEqual(self.storage.batches, [[1], [2, 3, 4]])
        self.assertTrue(all(d.called for d in done))
        self.assertEqual(self.journal.committed_seq, 4)
        self.assertEqual([r.seq for r in self.committed], [1, 2, 3, 4])

    def test_an_unwound_record_is_no_longer_found(self):
        self.journal.append(Rec(1))
        self.journal.append(Rec(2))
        self.storage.complete()
        self.storage.complete()
        self.assertIsNotNone(self.journal.find(b"1"))
        self.journal.forget(b"1")
        self.assertIsNone(self.journal.find(b"1"))
        self.assertIsNone(self.journal.recent(b"1"))
        self.assertIsNotNone(self.journal.find(b"2"))

    def test_a_block_is_written_alone_in_its_place_and_retried(self):
        first = [self.journal.append(Rec(n)) for n in (1, 2)]
        block = self.journal.append_block(Rec(3), (7, b"h", b"", b"", b"", 0.0), [b"1"], None)
        later = self.journal.append(Rec(4))
        self.storage.complete()  # 1 alone (the writer was idle)
        self.storage.full = True
        self.storage.complete()  # 2: the disk is full
        self.storage.full = False
        self.clock.advance(0.1)
        self.storage.complete()  # 2 again, without the block behind it
        self.assertFalse(block.called)
        self.assertEqual(self.journal.committed_seq, 2)
        self.storage.complete()  # the block and its reward's record, alone
        self.assertEqual(block.result.seq, 3)
        self.assertEqual(self.journal.committed_seq, 3)
        self.assertFalse(later.called)
        self.storage.complete()
        self.assertEqual(self.storage.batches, [[1], [2], [3, "block 7"], [4]])
        self.assertTrue(all(d.called for d in first + [later]))
        # The block's record is found like the others; no finality event is
        # reported for it.
        self.assertIsNotNone(self.journal.find(b"3"))
        self.assertEqual([r.seq for r in self.committed], [1, 2, 4])
        self.flushLoggedErrors()

    def test_full_disk_keeps_records_and_retries(self):
        self.storage.full = True
        first = self.journal.append(Rec(1))
        self.storage.complete()
        self.assertFalse(first.called)
        self.assertIn("disk is full", self.journal.last_error)
        second = self.journal.append(Rec(2))
        self.assertEqual(self.storage.pending, [])  # waiting for the retry delay
        self.clock.advance(0.1)
        self.storage.complete()  # still full
        self.storage.full = False
        self.clock.advance(0.5)
        self.storage.complete()
        self.assertEqual(self.storage.batches, [[1, 2]])
        self.assertTrue(first.called and second.called)
        self.assertIsNone(self.journal.last_error)
        self.flushLoggedErrors()

    def test_drain_waits_for_everything_queued(self):
        self.journal.append(Rec(1))
        self.journal.append(Rec(2))
        drained = self.journal.drain()
        self.storage.complete()
        self.assertFalse(drained.called)
        self.storage.complete()
        self.assertTrue(drained.called)
        self.assertTrue(self.journal.drain().called)


class FullDiskNodeTests(unittest.TestCase):
    def test_finalized_only_once_durable_and_degraded_meanwhile(self):
        clock = Clock()
        node = sync_node(self, clock)
        node.startService()
        real = node.storage._append_now
        calls = []

        def full(records):
            calls.append(len(records))
            if len(calls) == 1:
                raise sqlite3.OperationalError("database or disk is full")
            return real(records)

        node.storage._append_now = full
        key, op, amount = devnet_funding(0)
        tx = transfer(key, [op], [(1000, key.key_hash)], total=amount)
        node.submit(tx)
        clock.advance(0)  # the lone masternode decides
        status = []
        node.queries.transaction_status(tx.txid).addCallback(status.append)
        self.assertEqual(status[-1]["status"], "pending")
        self.assertEqual(node.queries.health()["status"], "degraded")
        clock.advance(0.2)
        node.queries.transaction_status(tx.txid).addCallback(status.append)
        self.assertEqual(status[-1]["status"], "finalized")
        self.assertEqual(node.queries.health()["status"], "ok")
        self.assertEqual(calls, [1, 1])
        self.flushLoggedErrors()
        node.stopService()
