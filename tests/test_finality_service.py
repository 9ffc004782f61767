"""SnowballFinality and FinalitySync without sockets: a fake network and a Clock."""

from collections import namedtuple

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.support import PrivateKey, devnet_funding, transfer
from timecoin.consensus.snowball import SnowballParams
from timecoin.finality.catchup import FinalitySync
from timecoin.finality.events import FinalityEventPublisher
from timecoin.finality.local import LocalFinality
from timecoin.finality.messages import (
    Finalized,
    GetFinalized,
    SnowballQuery,
    SnowballVotes,
    Subscribe,
)
from timecoin.finality.snowball import SnowballFinality
from timecoin.interfaces import (
    ICatchupHost,
    IFinality,
    IFinalityEvents,
    IFinalityHost,
    IFinalitySync,
    IPeer,
    IPeerMessaging,
)
from timecoin.ledger.tx import decode_tx
from timecoin.p2p import messages as m
from timecoin.p2p.messages import decode_message, encode_message
from timecoin.testing.fakes import KnownTransactions

KEYS = [PrivateKey.devnet(i).pubkey for i in range(4)]


@implementer(IPeer)
class Peer(namedtuple("Peer", "peer_id pubkey address direction")):
    """A fake ready peer."""


@implementer(IPeerMessaging)
class FakeNetwork:
    """Records what is sent; peers are the other three masternodes."""

    def __init__(self, pubkeys):
        self._peers = [Peer(i + 1, pk, f"127.0.0.1:{i}", "outbound")
                       for i, pk in enumerate(pubkeys)]
        self.sent = []
        self.handlers = {}
        self.banned = []

    def peers(self):
        return list(self._peers)

    def get_peer(self, peer_id):
        return next((p for p in self._peers if p.peer_id == peer_id), None)

    def register_handler(self, kind, callback):
        self.handlers[kind] = callback

    def send(self, peer_id, message):
        # every message crosses the codec, as it would on the wire
        self.sent.append((peer_id, decode_message(encode_message(message))))
        return True

    def deliver(self, peer_id, message):
        self.handlers[message.KIND](peer_id, decode_message(encode_message(message)))

    def masternode_peers(self):
        return {p.pubkey: p.peer_id for p in self._peers}

    def ban_peer(self, peer_id, reason):
        self.banned.append((peer_id, reason))
        peer = self.get_peer(peer_id)
        if peer is not None:
            self.drop(peer.pubkey)
        return peer is not None

    def drop(self, pubkey):
        """The masternode ``pubkey`` disconnects."""
        self._peers = [p for p in self._peers if p.pubkey != pubkey]

    def take(self, kind):
        out = [(p, msg) for p, msg in self.sent if msg.KIND == kind]
        self.sent = [(p, msg) for p, msg in self.sent if msg.KIND != kind]
        return out


def tx_for(i):
    key, op, amount = devnet_funding(i)
    return transfer(key, [op], [(1000, key.key_hash)], total=amount)


class SnowballFinalityTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        params = SnowballParams(k=20, alpha=0.75, beta=3, finality_confidence=3, max_rounds=6)
        self.finality = SnowballFinality(self.clock, params, {pk: 1 for pk in KEYS}, KEYS[0],
                                         query_timeout_ms=500)
        self.network = FakeNetwork(KEYS[1:])
        self.finality.attach(self.network, KnownTransactions())
        self.decisions = []
        self.finality.add_listener(lambda *d: self.decisions.append(d))

    def test_provides_the_interface(self):
        verifyObject(IFinality, self.finality)
        verifyObject(IFinality, LocalFinality(self.clock))
        verifyObject(IPeerMessaging, self.network)
        verifyObject(IPeer, self.network.get_peer(1))

    def answer_all(self, yes=True):
        for peer_id, query in self.network.take(m.SNOWBALL_QUERY):
            self.network.deliver(peer_id, SnowballVotes(query.poll_id,
                                                        (yes,) * len(query.txids)))

    def test_batched_polls_finalize_after_confidence_rounds(self):
        txs = [tx_for(i) for i in range(3)]
        for tx in txs:
            self.finality.start(tx)
        queries = self.network.take(m.SNOWBALL_QUERY)
        # one query per sampled validator per poll, each carrying every transaction
        self.assertEqual({p for p, _ in queries}, {1, 2, 3})
        self.assertTrue(all(len(q.txids) >= 1 for _, q in queries))
        for query in queries:
            self.network.deliver(query[0], SnowballVotes(query[1].poll_id,
                                                         (True,) * len(query[1].txids)))
        for _ in range(10):
            self.answer_all()
        self.assertEqual({d[0] for d in self.decisions}, {tx.txid for tx in txs})
        self.assertTrue(all(d[1] for d in self.decisions))
        self.assertEqual(self.finality.in_flight(), 0)

    def test_unanswered_polls_stall_without_freeing_the_transaction(self):
        tx = tx_for(4)
        self.finality.start(tx)
        for _ in range(20):
            self.network.take(m.SNOWBALL_QUERY)
            self.clock.advance(0.5)
        self.assertEqual(self.decisions, [])
        self.assertTrue(self.finality.engine.is_stalled(tx.txid))
        self.assertEqual(self.finality.engine.snapshot(tx.txid).reason, "stalled")
        # Stalled transactions are counted apart: back-pressure is not wedged by them.
        self.assertEqual(self.finality.in_flight(), 0)
        self.assertEqual(self.finality.stalled(), 1)
        self.assertTrue(self.finality.pending_reason(tx.txid).startswith("stalled: "))
        self.assertFalse(self.finality.cancel(tx.txid))
        self.assertEqual(self.finality.engine.status(tx.txid), "pending")
        self.assertGreater(self.finality.polls.stats.missing_replies, 0)
        # Polling goes on, less often: the transaction is still asked about.
        asked = 0
        for _ in range(200):
            asked += sum(tx.txid in q.txids for _, q in self.network.take(m.SNOWBALL_QUERY))
            self.clock.advance(0.5)
        self.assertGreater(asked, 0)

    def test_two_of_four_connected_never_polls(self):
        self.network.drop(KEYS[2])
        self.network.drop(KEYS[3])
        self.finality.start(tx_for(9))
        self.clock.advance(5)
        self.assertEqual(self.network.take(m.SNOWBALL_QUERY), [])
        self.assertIn("insufficient-connected-stake", self.finality.poll_abort_reason)

    def test_query_about_unknown_tx_fetches_then_answers(self):
        tx = tx_for(5)
        self.network.deliver(2, SnowballQuery(7, (tx.txid,)))
        (peer_id, getdata), = self.network.take(m.GETDATA)
        self.assertEqual((peer_id, getdata.txids), (2, (tx.txid,)))
        self.assertEqual(self.network.take(m.SNOWBALL_VOTES), [])
        self.finality.start(tx)  # fetched and validated by the node
        (peer_id, votes), = self.network.take(m.SNOWBALL_VOTES)
        self.assertEqual((peer_id, votes.poll_id, votes.votes), (2, 7, (True,)))

    def test_votes_follow_the_nodes_decisions_beyond_the_engine(self):
        host = KnownTransactions()
        self.finality.attach(self.network, host)
        final, rejected = b"\x0a" * 32, b"\x0b" * 32
        host.finalized.add(final)
        host.rejected.add(rejected)
        host.settled_ones.update((final, rejected))
        self.assertIsNone(self.finality.engine.status(final))
        self.network.deliver(2, SnowballQuery(8, (final, rejected)))
        (_, votes), = self.network.take(m.SNOWBALL_VOTES)
        self.assertEqual(votes.votes, (True, False))

    def test_unfetchable_tx_is_voted_no_after_the_fetch_timeout(self):
        self.network.deliver(3, SnowballQuery(9, (b"\x01" * 32,)))
        self.clock.advance(self.finality.fetch_timeout)
        (_, votes), = self.network.take(m.SNOWBALL_VOTES)
        self.assertEqual(votes.votes, (False,))

    def test_conflicting_tx_is_voted_against_until_preference_flips(self):
        key, op, amount = devnet_funding(6)
        first = transfer(key, [op], [(1000, key.key_hash)], total=amount)
        second = transfer(key, [op], [(2000, key.key_hash)], total=amount)
        self.finality.start(first)
        self.finality.start(second)
        self.network.deliver(1, SnowballQuery(1, (first.txid, second.txid)))
        (_, votes), = self.network.take(m.SNOWBALL_VOTES)
        self.assertEqual(votes.votes, (True, False))
        for _ in range(12):
            for peer_id, query in self.network.take(m.SNOWBALL_QUERY):
                answer = tuple(t == second.txid for t in query.txids)
                self.network.deliver(peer_id, SnowballVotes(query.poll_id, answer))
        decided = {d[0]: d[1] for d in self.decisions}
        self.assertEqual(decided, {second.txid: True, first.txid: False})
        self.assertGreaterEqual(self.finality.engine.stats.preference_flips, 1)

    def test_no_validators_connected_means_no_decision(self):
        lonely = SnowballFinality(self.clock, SnowballParams(), {pk: 1 for pk in KEYS}, KEYS[0],
                                  query_timeout_ms=500)
        lonely.attach(FakeNetwork([]), KnownTransactions())
        lonely.start(tx_for(8))
        self.clock.advance(10)
        self.assertEqual(lonely.in_flight(), 1)
        lonely.stop()


class PublisherTests(unittest.TestCase):
    def test_subscribers_get_finality_events(self):
        network = FakeNetwork(KEYS[1:])
        publisher = FinalityEventPublisher()
        verifyObject(IFinalityEvents, publisher)
        publisher.attach(network)
        publisher.publish(b"\x01" * 32, True, "finalized", 12.7)  # nobody listens yet
        network.deliver(2, Subscribe())
        publisher.publish(b"\x02" * 32, True, "finalized", 12.7)
        publisher.publish(b"\x03" * 32, False, "conflict: lost to ab", None)
        events = [(p, e.txid[0], e.accepted, e.reason, e.finality_ms)
                  for p, e in network.take(m.FINALITY_EVENT)]
        self.assertEqual(events, [(2, 2, True, "finalized", 12), (2, 3, False, "conflict", 0)])
        self.assertEqual(publisher.subscribers, 1)


@implementer(ICatchupHost, IFinalityHost)
class FakeNode:
    """A node's journal as a list; what is submitted is started on ``finality``
    (as the node does) and its decisions recorded; conflict sets saved at once."""

    def __init__(self, journal, finality=None):
        self.journal = journal
        self.finality = finality
        self.submitted = []
        self.decided = {}
        self.saved_sets = []
        if finality is not None:
            finality.add_listener(lambda txid, accepted, reason:
                                  self.decided.setdefault(txid, accepted))

    def journal_page(self, after, limit):
        return defer.succeed([(s, r) for s, r in self.journal if s > after][:limit])

    def finalized_recently(self, txid):
        return self.decided.get(txid) is True

    def settled(self, txid):
        return txid in self.decided

    def have_tx(self, txid):
        return txid in self.decided or txid in self.submitted

    def finalized_here(self, txid):
        return defer.succeed(self.finalized_recently(txid))

    def is_validating(self, txid):
        return False

    def decision(self, txid):
        return self.decided.get(txid)

    def save_conflict_sets(self, records):
        self.saved_sets.extend(records)
        return defer.succeed(None)

    def submit_raw(self, raw, from_peer=False):
        tx = decode_tx(raw)
        self.submitted.append(tx.txid)
        self.finality.start(tx)
        return defer.succeed(tx.txid)


def double_spend(i):
    """Two transactions spending the same devnet output."""
    key, op, amount = devnet_funding(i)
    return (transfer(key, [op], [(1000, key.key_hash)], total=amount),
            transfer(key, [op], [(2000, key.key_hash)], total=amount))


class FinalitySyncTests(unittest.TestCase):
    def make(self, weights=None, journal=()):
        weights = weights or {pk: 1 for pk in KEYS}
        self.clock = Clock()
        params = SnowballParams(k=20, alpha=0.75, beta=3, finality_confidence=3, max_rounds=6)
        self.finality = SnowballFinality(self.clock, params, weights, KEYS[0],
                                         query_timeout_ms=500)
        self.network = FakeNetwork(KEYS[1:])
        self.node = FakeNode(list(journal), self.finality)
        self.finality.attach(self.network, self.node)
        self.sync = FinalitySync(self.clock, self.node, self.finality, KEYS, KEYS[0])
        self.sync.attach(self.network)

    def setUp(self):
        self.txs = [tx_for(i) for i in range(20, 23)]
        self.make(journal=[(i + 10, tx.raw) for i, tx in enumerate(self.txs)])

    def report(self, peer_ids, txs):
        page = Finalized(tuple((n, tx.raw) for n, tx in enumerate(txs, 1)), False)
        for peer_id in peer_ids:
            self.network.deliver(peer_id, page)

    def test_provides_the_interfaces(self):
        verifyObject(IFinalitySync, self.sync)
        verifyObject(ICatchupHost, self.node)
        verifyObject(IFinalityHost, self.node)

    def test_serves_pages_of_the_journal(self):
        self.network.deliver(1, GetFinalized(10, 1))
        (_, page), = self.network.take(m.FINALIZED)
        self.assertEqual(page.entries, ((11, self.txs[1].raw),))
        self.assertTrue(page.more)

    def test_reports_from_more_than_alpha_of_the_stake_apply(self):
        self.sync.poll()
        self.assertEqual(len(self.network.take(m.GET_FINALIZED)), 3)
        self.report([1, 2], self.txs)
        # 2 of 4 equal masternodes: entered and polled, not applied
        self.assertEqual(self.node.submitted, [tx.txid for tx in self.txs])
        self.assertEqual(self.node.decided, {})
        self.assertEqual(self.sync.applied, 0)
        self.assertTrue(self.network.take(m.SNOWBALL_QUERY))
        self.report([3], self.txs[:2])
        # 3 of 4 (75 % of the stake, with this node's own 25 % not among them)
        # is not more than alpha = 0.75 either
        self.assertEqual(self.node.decided, {})

    def test_three_of_four_by_stake_apply(self):
        weights = {KEYS[0]: 1, KEYS[1]: 2, KEYS[2]: 2, KEYS[3]: 2}
        self.make(weights)
        self.report([1, 2], self.txs)
        self.assertEqual(self.node.decided, {})
        self.report([3], self.txs[:2])  # 6 of 7: more than alpha
        self.assertEqual(self.node.decided, {tx.txid: True for tx in self.txs[:2]})
        self.assertEqual(self.sync.applied, 2)
        self.assertEqual(self.finality.engine.status(self.txs[2].txid), "pending")

    def test_reports_never_override_a_pending_conflict(self):
        weights = {KEYS[0]: 1, KEYS[1]: 2, KEYS[2]: 2, KEYS[3]: 2}
        self.make(weights)
        a, b = double_spend(30)
        self.node.submit_raw(a.raw)
        self.report([1, 2], [b])  # 2 of 4 report B while A is pending
        self.assertEqual(self.node.decided, {})
        self.assertEqual(self.finality.engine.status(a.txid), "pending")
        self.assertEqual(self.finality.engine.status(b.txid), "pending")
        self.assertIn(b.txid, self.node.submitted)
        polled = set()
        for _ in range(4):  # the polls in flight time out, the next carry B too
            polled |= {t for _, q in self.network.take(m.SNOWBALL_QUERY) for t in q.txids}
            self.clock.advance(0.6)
        self.assertEqual(polled, {a.txid, b.txid})
        # even with every other masternode reporting B, A pending means polling
        self.report([3], [b])
        self.assertEqual(self.node.decided, {})
        self.assertEqual(self.sync.applied, 0)

    def test_stake_not_head_count_decides(self):
        heavy = {KEYS[0]: 1, KEYS[1]: 10, KEYS[2]: 1, KEYS[3]: 1}
        self.make(heavy)
        self.report([2, 3], self.txs[:1])  # 2 of 13: no
        self.assertEqual(self.node.decided, {})
        self.report([1], self.txs[1:2])  # one masternode with 10 of 13: yes
        self.assertEqual(self.node.decided, {self.txs[1].txid: True})
        light = {KEYS[0]: 3, KEYS[1]: 3, KEYS[2]: 1, KEYS[3]: 1}
        self.make(light)
        self.report([1, 2, 3], self.txs[:1])  # all three others: 5 of 8
        self.assertEqual(self.node.decided, {})

    def test_cursors_move_on_and_in_sync_masternodes_are_not_asked(self):
        self.sync.poll()
        self.network.take(m.GET_FINALIZED)
        self.report([1, 2], self.txs)
        self.sync.poll()
        asks = {p: msg.after_seq for p, msg in self.network.take(m.GET_FINALIZED)}
        self.assertEqual(asks, {1: 3, 2: 3})  # 3 has not answered yet
        self.network.deliver(1, Finalized((), False))
        self.network.deliver(2, Finalized((), False))
        self.assertTrue(self.sync.in_sync(KEYS[1]))
        self.clock.advance(31)
        self.sync.poll()
        asks = {p: msg.after_seq for p, msg in self.network.take(m.GET_FINALIZED)}
        self.assertEqual(asks, {3: 0})  # 1 and 2 are in sync
        self.clock.advance(self.sync.idle_interval)
        self.sync.poll()
        asks = {p: msg.after_seq for p, msg in self.network.take(m.GET_FINALIZED)}
        self.assertEqual(asks, {1: 3, 2: 3, 3: 0})  # 3's unanswered request is stale
        # reconnection: asked again at once
        self.network.deliver(1, Finalized((), False))
        self.network.drop(KEYS[1])
        self.sync.poll()
        self.network._peers.append(Peer(1, KEYS[1], "127.0.0.1:0", "outbound"))
        self.sync.poll()
        self.assertEqual([p for p, _ in self.network.take(m.GET_FINALIZED)], [1])

    def test_pages_from_non_masternodes_are_ignored(self):
        stranger = FakeNetwork([PrivateKey.devnet(70).pubkey])
        sync = FinalitySync(Clock(), self.node, self.finality, KEYS, KEYS[0])
        sync.attach(stranger)
        stranger.deliver(1, Finalized(((1, self.txs[0].raw),), False))
        self.assertEqual(sync._claims, {})


class FakeTx:
    def __init__(self, txid):
        self.txid = txid


class LoneMasternodeAnswerTests(unittest.TestCase):
    """A lone masternode (LocalFinality) answers the polls of plain nodes."""

    def setUp(self):
        self.clock = Clock()
        self.finality = LocalFinality(self.clock)
        self.network = FakeNetwork(KEYS[1:2])
        host = KnownTransactions()
        self.validating, self.known, self.final = host.validating, host.present, host.finalized
        self.finality.attach(self.network, host)

    def test_known_finalized_yes_unknown_fetched_and_held(self):
        done, fresh = b"\x01" * 32, b"\x02" * 32
        self.known.add(done)
        self.final.add(done)
        self.network.deliver(1, SnowballQuery(3, (done,)))
        (_, votes), = self.network.take(m.SNOWBALL_VOTES)
        self.assertEqual(votes.votes, (True,))
        self.network.deliver(1, SnowballQuery(4, (fresh,)))
        (_, getdata), = self.network.take(m.GETDATA)
        self.assertEqual(getdata.txids, (fresh,))
        self.clock.advance(0.005)
        self.assertEqual(self.network.take(m.SNOWBALL_VOTES), [])  # held while arriving
        self.known.add(fresh)
        self.validating.add(fresh)
        self.clock.advance(0.005)
        self.assertEqual(self.network.take(m.SNOWBALL_VOTES), [])  # held while validating
        self.validating.discard(fresh)
        self.finality.start(FakeTx(fresh))  # admitted: the held query is answered
        (_, votes), = self.network.take(m.SNOWBALL_VOTES)
        self.assertEqual(votes.votes, (True,))

    def test_refused_transaction_is_a_no_at_once(self):
        bad = b"\x04" * 32
        self.validating.add(bad)
        self.known.add(bad)
        self.network.deliver(1, SnowballQuery(6, (bad,)))
        self.assertEqual(self.network.take(m.SNOWBALL_VOTES), [])
        self.validating.discard(bad)
        self.finality.tx_settled(bad)
        (_, votes), = self.network.take(m.SNOWBALL_VOTES)
        self.assertEqual(votes.votes, (False,))

    def test_never_arriving_is_a_no_at_the_deadline(self):
        self.network.deliver(1, SnowballQuery(5, (b"\x03" * 32,)))
        self.clock.pump([0.005] * 250)
        (_, votes), = self.network.take(m.SNOWBALL_VOTES)
        self.assertEqual(votes.votes, (False,))
