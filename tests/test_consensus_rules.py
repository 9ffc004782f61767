"""The safety rules of the Snowball core: quorums, the self vote, early termination,
restart records, votes after decisions and catch-up by stake."""

import random

from twisted.trial import unittest
from zope.interface.verify import verifyObject

from timecoin.consensus.interfaces import IPollManager, ISnowballEngine
from timecoin.consensus.polls import PollManager
from timecoin.consensus.sampling import Reputation
from timecoin.consensus.snowball import (
    ACCEPTED,
    PENDING,
    REJECTED,
    ConflictSetRecord,
    FinalStatusError,
    SnowballEngine,
    SnowballParams,
)

PARAMS = SnowballParams(k=20, alpha=0.75, beta=3, finality_confidence=3, max_rounds=10)


def manager(n=4, connected=None, params=PARAMS, stake=None):
    engine = SnowballEngine(params)
    weights = {i: (stake or {}).get(i, 1) for i in range(n)}
    polls = PollManager(engine, Reputation(lambda: 0.0), random.Random(1), 0,
                        validators=weights,
                        connected=range(1, n) if connected is None else connected)
    return polls, engine


def reply_all(polls, queries, vote=lambda validator, txid: True, skip=()):
    decisions = []
    for query in queries:
        if query.validator not in skip:
            decisions += polls.on_reply(query.poll_id, query.validator,
                                        [vote(query.validator, t) for t in query.txids])
    return decisions


class InterfaceTests(unittest.TestCase):
    def test_engine_and_poll_manager_provide_their_interfaces(self):
        polls, engine = manager(4)
        self.assertTrue(verifyObject(ISnowballEngine, engine))
        self.assertTrue(verifyObject(IPollManager, polls))


class QuorumTests(unittest.TestCase):
    def test_three_of_four_decide(self):
        polls, engine = manager(4, connected=[1, 2])  # node 3 is down
        engine.add("t", ["o"])
        decisions = []
        for step in range(3):
            queries = polls.start_poll(float(step))
            self.assertEqual({q.validator for q in queries}, {1, 2})
            decisions += reply_all(polls, queries)
        self.assertEqual(decisions, [("t", True, "finalized")])

    def test_two_of_four_never_poll(self):
        polls, engine = manager(4, connected=[1])
        engine.add("t", ["o"])
        self.assertFalse(polls.can_start())
        self.assertEqual(polls.start_poll(0.0), [])
        self.assertEqual(polls.stats.started, 0)
        self.assertEqual(polls.stats.aborted, 2)
        self.assertEqual(polls.abort_reason,
                         "insufficient-connected-stake: 2 of 4 active stake reachable")

    def test_two_yes_of_four_is_not_a_round(self):
        polls, engine = manager(4)
        engine.add("t", ["o"])
        queries = polls.start_poll(0.0)
        reply_all(polls, queries, vote=lambda v, t: v == 1)
        self.assertEqual(engine.snapshot("t").confidence, 0)

    def test_eclipsed_node_with_one_of_a_hundred_never_polls(self):
        polls, engine = manager(100, connected=[1])
        engine.add("t", ["o"])
        for _ in range(5):
            self.assertEqual(polls.start_poll(0.0), [])
        self.assertEqual(polls.stats.started, 0)
        self.assertEqual(polls.stats.aborted, 5)

    def test_samples_come_from_the_whole_active_set(self):
        polls, engine = manager(100, connected=range(1, 80))
        engine.add("t", ["o"])
        queries = polls.start_poll(0.0)
        poll = polls._polls[queries[0].poll_id]
        self.assertEqual(len(poll.sample), 20)
        # Sampled validators out of reach get no query: they are silent "no" votes.
        self.assertEqual({q.validator for q in queries},
                         {v for v in poll.sample if v != 0 and v < 80})

    def test_stake_weighs_reachability(self):
        polls, engine = manager(4, connected=[1], stake={0: 5, 1: 5, 2: 1, 3: 1})
        engine.add("t", ["o"])
        self.assertTrue(polls.can_start())  # 10 of 12 reachable

    def test_self_vote_counts(self):
        polls, engine = manager(4)
        engine.add("a", ["o"])
        engine.add("b", ["o"])  # this node prefers "a"
        queries = polls.start_poll(0.0)
        reply_all(polls, queries, vote=lambda v, t: t == "a" and v != 3 or t == "b" and v == 3)
        self.assertEqual(engine.snapshot("a").confidence, 1)  # 3 of 4 with its own vote
        self.assertEqual(engine.snapshot("b").confidence, 0)


class EarlyTerminationTests(unittest.TestCase):
    def test_poll_ends_once_alpha_is_reached(self):
        polls, engine = manager(4)
        engine.add("t", ["o"])
        queries = polls.start_poll(0.0)
        reply_all(polls, queries, skip=(3,))  # node 3 is frozen
        self.assertEqual(polls.polls_in_flight, 0)
        self.assertEqual(polls.stats.early_terminated, 1)
        self.assertEqual(engine.snapshot("t").confidence, 1)

    def test_poll_ends_once_alpha_is_out_of_reach(self):
        polls, engine = manager(4)
        engine.add("t", ["o"])
        engine.add("u", ["o"])  # not preferred here: its own vote is no
        queries = polls.start_poll(0.0)
        reply_all(polls, queries, vote=lambda v, t: False, skip=(2, 3))
        self.assertEqual(polls.polls_in_flight, 1)  # "t" (its own yes) can still reach 3
        reply_all(polls, queries, vote=lambda v, t: False, skip=(1, 3))
        self.assertEqual(polls.polls_in_flight, 0)  # 2 yes at most for "t": failed
        self.assertEqual(polls.stats.early_terminated, 1)


class RestartTests(unittest.TestCase):
    def test_restore_pins_the_voted_side(self):
        engine = SnowballEngine(PARAMS)
        engine.add("a", ["o"])
        engine.add("b", ["o"])
        self.assertEqual(engine.votes(["a", "b"]), [True, False])
        records = engine.dirty_records()
        self.assertEqual(len(records), 1)
        self.assertEqual(records[0].preferred, "a")
        self.assertEqual(records[0].members, (("a", ("o",)), ("b", ("o",))))
        self.assertEqual(engine.dirty_records(), [])  # nothing changed since
        restarted = SnowballEngine(PARAMS)
        restarted.add("b", ["o"])  # heard of "b" first after the restart
        restarted.restore(records)
        self.assertEqual(restarted.votes(["a", "b"]), [True, False])
        for _ in range(3):  # polls move its preference to "b" ...
            restarted.record_poll({"b": (4, 4)})
        self.assertEqual(restarted.status("b"), ACCEPTED)  # ... until a decision arrives
        self.assertEqual(restarted.votes(["a", "b"]), [False, True])

    def test_pinned_vote_holds_while_preference_moves(self):
        engine = SnowballEngine(PARAMS)
        engine.restore([_record("o", ["a", "b"], "a")])
        engine.record_poll({"b": (3, 4)})  # strength only (alpha_preference 3 of 4 ...)
        engine.record_poll({"b": (2, 4)})
        self.assertEqual(engine.votes(["a", "b"]), [True, False])

    def test_new_members_make_records_dirty(self):
        engine = SnowballEngine(PARAMS)
        engine.add("a", ["o"])
        engine.votes(["a"])
        engine.dirty_records()
        engine.add("c", ["o"])
        engine.votes(["c"])
        (record,) = engine.dirty_records()
        self.assertEqual([t for t, _ in record.members], ["a", "c"])


def _record(op, members, preferred):
    return ConflictSetRecord(op, tuple((t, (op,)) for t in members), preferred)


class DecisionTests(unittest.TestCase):
    def test_votes_follow_decisions_beyond_the_window(self):
        journal = {"old-yes": True, "old-no": False}
        engine = SnowballEngine(PARAMS, remember=1, lookup=journal.get)
        self.assertEqual(engine.votes(["old-yes", "old-no", "unknown"]), [True, False, False])

    def test_tie_keeps_the_current_preference(self):
        engine = SnowballEngine(PARAMS)
        engine.add("z", ["o"])
        engine.add("a", ["o"])  # a smaller txid gains nothing
        engine.record_poll({"a": (3, 4)})
        engine.record_poll({"z": (3, 4)})
        self.assertTrue(engine.is_preferred("a"))
        engine.record_poll({"z": (3, 4)})
        self.assertTrue(engine.is_preferred("z"))

    def test_final_statuses_never_change(self):
        engine = SnowballEngine(PARAMS)
        engine.add("a", ["o"])
        for _ in range(3):
            engine.record_poll({"a": (4, 4)})
        self.assertEqual(engine.add("a", ["o"]), [])
        self.assertEqual(engine.report_finalized("b", ["o"], trusted=True),
                         [("b", False, "double-spend")])
        self.assertEqual(engine.report_finalized("b", ["o"], trusted=True), [])
        self.assertEqual(engine.status("b"), REJECTED)
        self.assertRaises(FinalStatusError, engine._decide, "b", True, "finalized")


class CatchUpTests(unittest.TestCase):
    def test_report_applied_by_more_than_alpha_of_stake(self):
        polls, engine = manager(8)
        self.assertEqual(polls.report_finalized("x", ["o"], reporters=range(1, 8)),
                         [("x", True, "finalized-by-network")])  # 7 of 8 > 75 %
        polls, engine = manager(8)
        self.assertEqual(polls.report_finalized("x", ["o"], reporters=range(1, 7)), [])
        self.assertEqual(engine.status("x"), PENDING)  # 6 of 8 is not more: polled as usual

    def test_report_over_a_pending_conflict_only_polls(self):
        polls, engine = manager(4)
        engine.add("a", ["o"])
        self.assertEqual(polls.report_finalized("b", ["o"], reporters=[1, 2, 3]), [])
        self.assertEqual((engine.status("a"), engine.status("b")), (PENDING, PENDING))
        self.assertTrue(engine.is_preferred("a"))

    def test_unknown_or_zero_stake_reporters_count_nothing(self):
        polls, engine = manager(4)
        self.assertEqual(polls.report_finalized("b", ["o"], reporters=[7, 8, 9, 1, 1]), [])
        self.assertEqual(engine.status("b"), PENDING)
