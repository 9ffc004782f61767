"""Conflict-set saves, which gate this node's votes, go ahead of the journal's
queued records, and a vote still never leaves before its set is durable."""

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.test_finality_service import KEYS, FakeNetwork
from tests.test_restart_safety import HeldStorage, double_spend
from timecoin.consensus.snowball import SnowballParams
from timecoin.finality.messages import SnowballQuery
from timecoin.finality.snowball import SnowballFinality
from timecoin.interfaces import IFinality, IFinalityHost, IJournal
from timecoin.p2p import messages as m
from timecoin.storage.conflict_tables import ConflictSetBatch, StoredConflictSet
from timecoin.storage.journal import RETRY_DELAYS, SETS_WITH_RECORDS, JournalWriter
from timecoin.testing.fakes import KnownTransactions


class Rec:
    """A journal record as the writer handles it (sequence number and txid)."""

    def __init__(self, seq):
        self.seq = seq
        self.txid = b"%d" % seq


def one_set(i=0):
    _, op, _, a, _ = double_spend(i)
    return ConflictSetBatch([StoredConflictSet(op, (a.txid,), a.txid)], {a.txid: a.raw})


class SetsFirstTests(unittest.TestCase):
    def setUp(self):
        self.storage = HeldStorage()
        self.reported = []
        self.journal = JournalWriter(Clock(), self.storage, self.on_commit)
        verifyObject(IJournal, self.journal)

    def on_commit(self, records):
        self.reported.append(([r.seq for r in records], len(self.storage.calls)))

    def complete(self, n):
        self.storage.calls[n][2].callback(0)

    def test_sets_are_durable_before_a_larger_batch_queued_earlier(self):
        self.journal.append(Rec(1))  # on the writer thread
        large = [self.journal.append(Rec(n)) for n in range(2, SETS_WITH_RECORDS + 3)]
        batch = one_set()
        saved = self.journal.save_conflict_sets(batch)
        self.complete(0)
        records, sets, _ = self.storage.calls[1]
        self.assertEqual((records, sets.sets), ([], batch.sets))  # the sets alone
        self.complete(1)
        self.assertTrue(saved.called)
        self.assertFalse(any(d.called for d in large))
        records, sets, _ = self.storage.calls[2]
        self.assertEqual([r.seq for r in records], list(range(2, SETS_WITH_RECORDS + 3)))
        self.assertIsNone(sets)
        self.complete(2)
        self.assertTrue(all(d.called for d in large))
        self.assertEqual(self.journal.committed_seq, SETS_WITH_RECORDS + 2)

    def test_a_steady_stream_of_saves_does_not_starve_the_records(self):
        self.journal.append(Rec(1))
        for n in range(2, 2 * SETS_WITH_RECORDS):
            self.journal.append(Rec(n))
        shapes = []
        for commit in range(4):  # a save arrives during every commit
            self.journal.save_conflict_sets(one_set(commit))
            self.complete(commit)
            records, sets, _ = self.storage.calls[commit + 1]
            shapes.append((len(records), bool(sets)))
            for n in range(100 * (commit + 1), 100 * (commit + 1) + SETS_WITH_RECORDS + 1):
                self.journal.append(Rec(n))
        # Sets alone, then the records passed over (with the sets saved meanwhile).
        self.assertEqual(shapes, [(0, True), (2 * SETS_WITH_RECORDS - 2 + SETS_WITH_RECORDS + 1,
                                              True),
                                  (0, True), (2 * SETS_WITH_RECORDS + 2, True)])

    def test_a_small_batch_rides_with_the_sets(self):
        self.journal.append(Rec(1))
        small = [self.journal.append(Rec(n)) for n in range(2, SETS_WITH_RECORDS + 2)]
        saved = self.journal.save_conflict_sets(one_set())
        self.complete(0)
        records, sets, _ = self.storage.calls[1]
        self.assertEqual(len(records), SETS_WITH_RECORDS)
        self.assertTrue(sets)
        self.complete(1)
        self.assertTrue(saved.called and all(d.called for d in small))

    def test_the_next_commit_starts_before_the_last_is_reported(self):
        self.journal.append(Rec(1))
        self.journal.append(Rec(2))
        self.complete(0)
        # When commit 1 was reported, commit 2 was already with the storage.
        self.assertEqual(self.reported, [([1], 2)])
        drained = self.journal.drain()
        self.complete(1)
        self.assertEqual(self.reported, [([1], 2), ([2], 2)])
        self.assertTrue(drained.called)

    def test_commits_are_reported_in_order_when_storage_answers_at_once(self):
        class AtOnce(HeldStorage):
            def append_journal(self, records, conflict_sets=None):
                d = super().append_journal(records, conflict_sets)
                d.callback(0)
                return d

        order = []
        journal = JournalWriter(Clock(), AtOnce(),
                                lambda records: order.append([r.seq for r in records]))
        journal.append(Rec(1))
        saved = journal.save_conflict_sets(one_set())
        self.assertTrue(saved.called)
        journal.append(Rec(2))
        self.assertEqual(order, [[1], [], [2]])
        self.assertTrue(journal.drain().called)


@implementer(IFinalityHost)
class JournalledHost(KnownTransactions):
    """A node's host as far as votes go: conflict sets saved through a journal."""

    def __init__(self, journal):
        super().__init__()
        self.journal = journal

    def save_conflict_sets(self, records):
        batch = ConflictSetBatch()
        for record in records:
            members = tuple(txid for txid, _ in record.members)
            batch.sets.append(StoredConflictSet(record.outpoint, members, record.preferred))
        d = Deferred()
        self.saved.append((list(records), d))
        self.journal.save_conflict_sets(batch).chainDeferred(d)
        return d


class VoteAfterItsSetTests(unittest.TestCase):
    def setUp(self):
        self.clock = clock = Clock()
        params = SnowballParams(k=20, alpha=0.75, beta=3, finality_confidence=3, max_rounds=6)
        self.finality = SnowballFinality(clock, params, {pk: 1 for pk in KEYS}, KEYS[0],
                                         query_timeout_ms=500)
        self.network = FakeNetwork(KEYS[1:])
        self.storage = HeldStorage()
        self.journal = JournalWriter(clock, self.storage)
        self.host = JournalledHost(self.journal)
        verifyObject(IFinality, self.finality)
        verifyObject(IFinalityHost, self.host)
        self.finality.attach(self.network, self.host)
        self.addCleanup(self.finality.stop)

    def test_the_vote_leaves_once_its_set_commits_not_before_and_not_after_the_records(self):
        self.journal.append(Rec(1))  # a commit on the writer thread
        for n in range(2, 2 * SETS_WITH_RECORDS):  # and a large batch queued behind it
            self.journal.append(Rec(n), notify=False)
        _, op, _, a, b = double_spend(0)
        self.finality.start(a)
        self.finality.start(b)
        self.network.take(m.SNOWBALL_QUERY)
        self.network.deliver(1, SnowballQuery(7, (a.txid, b.txid)))
        self.assertEqual(self.network.take(m.SNOWBALL_VOTES), [])
        self.storage.calls[0][2].callback(0)  # the earlier commit: not the sets
        self.assertEqual(self.network.take(m.SNOWBALL_VOTES), [])
        records, sets, commit = self.storage.calls[1]
        self.assertEqual(records, [])
        self.assertEqual({(s.outpoint, s.preferred) for s in sets.sets}, {(op, a.txid)})
        self.assertEqual(sets.sets[-1].members, (a.txid, b.txid))
        commit.callback(0)
        [(peer, votes)] = self.network.take(m.SNOWBALL_VOTES)
        self.assertEqual((peer, votes.poll_id, votes.votes), (1, 7, (True, False)))
        self.assertEqual(len(self.storage.calls[2][0]), 2 * SETS_WITH_RECORDS - 2)
        self.assertFalse(self.storage.calls[2][2].called)  # the records still commit

    def test_a_failed_set_commit_keeps_the_vote_until_the_retry_commits(self):
        _, _, _, a, _ = double_spend(1)
        self.finality.start(a)
        self.network.take(m.SNOWBALL_QUERY)
        self.network.deliver(2, SnowballQuery(3, (a.txid,)))
        self.storage.calls[0][2].errback(OSError("disk full"))
        self.assertEqual(self.network.take(m.SNOWBALL_VOTES), [])
        self.clock.advance(RETRY_DELAYS[0])
        self.assertEqual(self.network.take(m.SNOWBALL_VOTES), [])
        self.storage.calls[1][2].callback(0)
        [(peer, votes)] = self.network.take(m.SNOWBALL_VOTES)
        self.assertEqual((peer, votes.votes), (2, (True,)))


class VotesWaitOnlyForTheirOwnSetsTests(unittest.TestCase):
    def setUp(self):
        params = SnowballParams(k=20, alpha=0.75, beta=3, finality_confidence=3, max_rounds=6)
        self.finality = SnowballFinality(Clock(), params, {pk: 1 for pk in KEYS}, KEYS[0],
                                         query_timeout_ms=500)
        self.network = FakeNetwork(KEYS[1:])
        self.host = KnownTransactions()
        self.host.save_at_once = False
        self.finality.attach(self.network, self.host)
        self.addCleanup(self.finality.stop)

    def test_a_durable_set_is_not_held_up_by_another_transactions_save(self):
        _, _, _, a, _ = double_spend(0)
        _, _, _, c, _ = double_spend(1)
        self.finality.start(a)
        self.host.commit_saved()  # a's set is durable
        self.finality.start(c)  # c's is not yet
        self.network.take(m.SNOWBALL_QUERY)
        self.network.deliver(1, SnowballQuery(1, (a.txid,)))
        self.network.deliver(2, SnowballQuery(2, (a.txid, c.txid)))
        self.network.deliver(3, SnowballQuery(3, (c.txid,)))
        sent = [(peer, v.poll_id) for peer, v in self.network.take(m.SNOWBALL_VOTES)]
        self.assertEqual(sent, [(1, 1)])
        self.host.commit_saved()
        sent = [(peer, v.poll_id, v.votes) for peer, v in self.network.take(m.SNOWBALL_VOTES)]
        self.assertEqual(sent, [(2, 2, (True, True)), (3, 3, (True,))])

    def test_a_set_saved_again_holds_its_votes_until_the_new_save(self):
        _, op, _, a, b = double_spend(0)
        self.finality.start(a)
        self.host.commit_saved()
        self.finality.start(b)  # a's set changes: a and b wait for this save
        self.network.take(m.SNOWBALL_QUERY)
        self.network.deliver(1, SnowballQuery(1, (a.txid,)))
        self.assertEqual(self.network.take(m.SNOWBALL_VOTES), [])
        [record] = self.host.saved[-1][0]
        self.assertEqual([t for t, _ in record.members], [a.txid, b.txid])
        self.host.commit_saved()
        [(_, votes)] = self.network.take(m.SNOWBALL_VOTES)
        self.assertEqual(votes.votes, (True,))


class BlockHeldStorage(HeldStorage):
    """:class:`HeldStorage` that also takes blocks (``save_block``), recorded as
    ``(records, "block HEIGHT", Deferred)``."""

    def save_block(self, block_row, records, confirmed_txids, masternode_rows=None,
                   active_set=None):
        d = Deferred()
        self.calls.append((list(records), f"block {block_row[0]}", d))
        return d


class SetsAndBlocksTests(unittest.TestCase):
    """A block is written alone, once no conflict sets wait: they go before it."""

    def setUp(self):
        self.storage = BlockHeldStorage()
        self.journal = JournalWriter(Clock(), self.storage)

    def complete(self, n):
        self.storage.calls[n][2].callback(0)

    def shape(self, n):
        records, what, _ = self.storage.calls[n]
        return [r.seq for r in records], what if isinstance(what, str) else bool(what)

    def test_sets_waiting_go_before_a_queued_block(self):
        self.journal.append(Rec(1))  # on the writer thread
        block = self.journal.append_block(Rec(2), (5, b"h", b"", b"", b"", 0.0), [b"2"], None,
                                          {b"k" * 32: 10})
        saved = self.journal.save_conflict_sets(one_set(0))
        self.complete(0)
        self.assertEqual(self.shape(1), ([], True))  # the sets, ahead of the block
        self.journal.save_conflict_sets(one_set(1))  # more sets while those commit
        self.complete(1)
        self.assertTrue(saved.called)
        self.assertFalse(block.called)
        self.assertEqual(self.shape(2), ([], True))  # the sets saved meanwhile, first too
        self.complete(2)
        self.assertEqual(self.shape(3), ([2], "block 5"))  # then the block, alone
        self.complete(3)
        self.assertEqual(block.result.seq, 2)
        self.assertEqual(self.journal.committed_seq, 2)
