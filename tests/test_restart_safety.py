"""Restart safety: the conflict sets a node votes on are durable before the vote
leaves, and a restarted node never votes for another member of one of them."""

import os

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.support import SyncStorage, devnet_funding, downgrade_schema, make_datadir, transfer
from tests.test_finality_service import KEYS, FakeNetwork
from timecoin.consensus.snowball import SnowballParams
from timecoin.consensus.state import ConflictSetRecord
from timecoin.finality.messages import SnowballQuery
from timecoin.finality.snowball import SnowballFinality
from timecoin.interfaces import IFinality, IFinalityHost, IJournal
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.networks import COIN, DEVNET
from timecoin.ledger.utxo import UtxoEntry
from timecoin.p2p import messages as m
from timecoin.sim import scenario
from timecoin.sim.cluster import Cluster
from timecoin.storage.conflict_tables import ConflictSetBatch, StoredConflictSet
from timecoin.storage.journal import JournalWriter
from timecoin.storage.store import JournalRecord, encode_undo, schema_files
from timecoin.testing.fakes import KnownTransactions

GENESIS = make_genesis(DEVNET)


def double_spend(i):
    """Two transfers of dev key ``i``'s genesis output (a conflict set)."""
    key, op, amount = devnet_funding(i)
    a = transfer(key, [op], [(1000, key.key_hash)], total=amount)
    b = transfer(key, [op], [(2000, key.key_hash)], total=amount)
    return key, op, amount, a, b


class ConflictSetStorageTests(unittest.TestCase):
    def setUp(self):
        self.path = os.path.join(make_datadir(self), "chain.sqlite3")

    def open(self):
        storage = SyncStorage(None, self.path)
        meta = storage.open_now(GENESIS)
        self.addCleanup(storage._close_now)
        return storage, meta

    def save(self, storage, op, members, preferred):
        batch = ConflictSetBatch(
            [StoredConflictSet(op, tuple(t.txid for t in members), preferred.txid)],
            {t.txid: t.raw for t in members})
        storage.append_journal([], batch)

    def test_saved_sets_come_back_at_open_with_their_inputs(self):
        storage, meta = self.open()
        self.assertEqual(meta.conflict_sets.sets, ())
        key, op, amount, a, b = double_spend(0)
        self.save(storage, op, [a], a)
        self.save(storage, op, [a, b], b)  # voted again: the later record wins
        storage._close_now()
        _, meta = self.open()
        restored = meta.conflict_sets
        self.assertEqual(restored.sets, (StoredConflictSet(op, (a.txid, b.txid), b.txid),))
        self.assertEqual(restored.pending, ((a.txid, a.raw), (b.txid, b.raw)))
        self.assertEqual(restored.utxos, ((op, amount, key.key_hash),))

    def test_finalizing_a_member_removes_its_set_in_the_same_commit(self):
        storage, meta = self.open()
        key, op, amount, a, b = double_spend(0)
        _, op2, _, c, _ = double_spend(1)
        self.save(storage, op, [a, b], a)
        self.save(storage, op2, [c], c)
        record = JournalRecord(meta.last_seq + 1, a.txid, a.raw,
                               encode_undo([UtxoEntry(op, amount, key.key_hash)]), 1.0, 2.0)
        storage.append_journal([record])
        storage._close_now()
        _, meta = self.open()
        self.assertEqual(meta.conflict_sets.sets, (StoredConflictSet(op2, (c.txid,), c.txid),))
        self.assertEqual(meta.conflict_sets.pending, ((c.txid, c.raw),))

    def migrate_from(self, version):
        storage, _ = self.open()
        self.save(storage, double_spend(0)[1], [double_spend(0)[3]], double_spend(0)[3])
        storage._close_now()
        downgrade_schema(self.path, version)
        storage, meta = self.open()
        self.assertIn("database schema migrated to version 3", storage.notes)
        self.assertEqual(meta.conflict_sets.sets, ())
        version = storage._conn.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        self.assertEqual(version, schema_files()[-1][0])
        key, op, amount, a, b = double_spend(2)
        self.save(storage, op, [a, b], a)
        storage._close_now()
        _, meta = self.open()
        self.assertEqual(meta.conflict_sets.sets, (StoredConflictSet(op, (a.txid, b.txid),
                                                                     a.txid),))

    def test_migration_from_a_version_1_database(self):
        self.migrate_from(1)

    def test_migration_from_a_version_2_database(self):
        self.migrate_from(2)


class HeldStorage:
    """Commits when the test says so."""

    def __init__(self):
        self.calls = []

    def append_journal(self, records, conflict_sets=None):
        d = Deferred()
        self.calls.append((list(records), conflict_sets, d))
        return d


class JournalConflictSetTests(unittest.TestCase):
    def test_sets_ride_in_the_next_group_commit(self):
        storage = HeldStorage()
        journal = JournalWriter(Clock(), storage)
        verifyObject(IJournal, journal)
        _, op, _, a, _ = double_spend(0)
        batch = ConflictSetBatch([StoredConflictSet(op, (a.txid,), a.txid)], {a.txid: a.raw})
        first = journal.save_conflict_sets(batch)
        second = journal.save_conflict_sets(batch)  # queued while the first commits
        self.assertEqual(len(storage.calls), 1)
        drained = journal.drain()
        storage.calls[0][2].callback(0)
        self.assertTrue(first.called)
        self.assertFalse(second.called)
        self.assertFalse(drained.called)
        self.assertEqual(storage.calls[1][1].sets, batch.sets)
        storage.calls[1][2].callback(0)
        self.assertTrue(second.called and drained.called)


class VotesWaitForTheirSetsTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        params = SnowballParams(k=20, alpha=0.75, beta=3, finality_confidence=3, max_rounds=6)
        self.finality = SnowballFinality(self.clock, params, {pk: 1 for pk in KEYS}, KEYS[0],
                                         query_timeout_ms=500)
        self.network = FakeNetwork(KEYS[1:])
        self.host = KnownTransactions()
        self.host.save_at_once = False
        verifyObject(IFinality, self.finality)
        verifyObject(IFinalityHost, self.host)
        self.finality.attach(self.network, self.host)
        self.addCleanup(self.finality.stop)

    def test_a_set_is_saved_when_its_member_enters(self):
        # No poll can start (no validator connected) and no query came: still saved.
        _, op, _, a, b = double_spend(0)
        for pubkey in KEYS[1:]:
            self.network.drop(pubkey)
        self.finality.start(a)
        self.finality.start(b)
        self.assertEqual(self.network.take(m.SNOWBALL_QUERY), [])
        records = [r for saved, _ in self.host.saved for r in saved]
        self.assertEqual([(r.outpoint, r.preferred) for r in records], [(op, a.txid)] * 2)
        self.assertEqual([[t for t, _ in r.members] for r in records],
                         [[a.txid], [a.txid, b.txid]])

    def test_a_cancelled_member_leaves_its_saved_set(self):
        _, op, _, a, _ = double_spend(0)
        for pubkey in KEYS[1:]:
            self.network.drop(pubkey)
        self.finality.start(a)
        self.assertTrue(self.finality.cancel(a.txid))  # never polled, never voted
        [record] = self.host.saved[-1][0]
        self.assertEqual((record.outpoint, record.members, record.preferred), (op, (), None))

    def test_no_vote_leaves_before_its_set_is_durable(self):
        _, op, _, a, b = double_spend(0)
        self.finality.start(a)
        self.finality.start(b)
        self.network.take(m.SNOWBALL_QUERY)
        saves = len(self.host.saved)
        records = self.host.saved[-1][0]
        self.assertEqual([(r.outpoint, r.preferred) for r in records], [(op, a.txid)])
        self.assertEqual([t for t, _ in records[0].members], [a.txid, b.txid])
        self.network.deliver(1, SnowballQuery(1, (a.txid, b.txid)))
        self.assertEqual(self.network.take(m.SNOWBALL_VOTES), [])
        # The same set again: nothing new to save, but the vote waits for the saves.
        self.network.deliver(2, SnowballQuery(2, (a.txid,)))
        self.assertEqual(self.network.take(m.SNOWBALL_VOTES), [])
        self.assertEqual(len(self.host.saved), saves)
        self.host.commit_saved()
        sent = [(peer, v.poll_id, v.votes) for peer, v in self.network.take(m.SNOWBALL_VOTES)]
        self.assertEqual(sent, [(1, 1, (True, False)), (2, 2, (True,))])

    def test_a_kill_before_the_commit_sends_nothing(self):
        _, _, _, a, _ = double_spend(0)
        self.finality.start(a)
        self.network.deliver(1, SnowballQuery(1, (a.txid,)))
        self.finality.stop()  # the process ends with the records written, the vote not sent
        self.host.commit_saved()
        self.assertEqual(self.network.take(m.SNOWBALL_VOTES), [])

    def test_restored_set_votes_only_for_its_pinned_member(self):
        _, op, _, a, b = double_spend(0)
        record = ConflictSetRecord(op, ((a.txid, (op,)), (b.txid, (op,))), b.txid)
        self.host.save_at_once = True
        self.finality.restore([a, b], [record])
        self.assertFalse(self.finality.cancel(b.txid))  # bound: it was voted on
        self.network.deliver(1, SnowballQuery(1, (a.txid, b.txid)))
        [(_, votes)] = self.network.take(m.SNOWBALL_VOTES)
        self.assertEqual(votes.votes, (False, True))


class ClusterRestartTests(unittest.TestCase):
    """Whole nodes in the simulator (real storage, one clock)."""

    def test_a_node_that_voted_for_a_never_votes_for_b_after_a_restart(self):
        cluster = Cluster(4, seed=3)
        self.addCleanup(cluster.close)
        cluster.start()
        # Two of four masternodes up: nothing can finalize, but node 1 votes on A.
        cluster.stop_node(2)
        cluster.stop_node(3)
        a = scenario.transfer_from_genesis(30, COIN)
        b = scenario.transfer_from_genesis(30, 2 * COIN)
        cluster.wait(cluster.submit(0, a), 10)
        voter = cluster.hosts[1].node
        cluster.run_until(lambda: voter.finality.queries_answered > 0, 30, "node 1 voted")
        self.assertTrue(voter.finality.engine.is_preferred(a.txid))
        restarted = cluster.restart_node(1)
        engine = restarted.finality.engine
        self.assertEqual(engine.status(a.txid), "pending")
        self.assertIn(a.txid, restarted.mempool)
        # B reaches the restarted node first: it joins A's set and gets no vote.
        cluster.wait(cluster.submit(1, b), 10)
        self.assertEqual(engine.status(b.txid), "pending")
        self.assertEqual(engine.votes([a.txid, b.txid]), [True, False])
        cluster.run(5)
        self.assertEqual(engine.votes([a.txid, b.txid]), [True, False])
        self.assertEqual(cluster.statuses(a.txid)[:2], ["pending", "pending"])
