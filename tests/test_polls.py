"""Tests for timecoin.consensus.polls: sampling, batching, replies and timeouts."""

import random

from twisted.trial import unittest

from timecoin.consensus.polls import PollManager, Query
from timecoin.consensus.sampling import Reputation
from timecoin.consensus.snowball import ACCEPTED, PENDING, SnowballEngine, SnowballParams


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make(validators=5, **kwargs):
    params = SnowballParams(k=4, alpha=0.75, beta=3, finality_confidence=2, max_rounds=6)
    engine = SnowballEngine(params)
    clock = FakeClock()
    reputation = Reputation(clock)
    weights = {f"v{i}": 1 for i in range(validators)}
    weights["me"] = 1
    manager = PollManager(engine, reputation, random.Random(0), "me", query_timeout_ms=2000,
                          validators=weights, **kwargs)
    return manager, engine, reputation, clock


def answer_all(manager, queries, vote=True):
    decisions = []
    for query in queries:
        decisions += manager.on_reply(query.poll_id, query.validator, [vote] * len(query.txids))
    return decisions


class PollManagerTests(unittest.TestCase):
    def setUp(self):
        self.manager, self.engine, self.reputation, self.clock = make()

    def test_nothing_to_poll(self):
        self.assertFalse(self.manager.can_start())
        self.assertEqual(self.manager.start_poll(0.0), [])
        self.assertIsNone(self.manager.next_deadline())

    def test_one_query_per_sampled_validator(self):
        self.engine.add("a", ["o1"])
        self.engine.add("b", ["o2"])
        queries = self.manager.start_poll(0.0)
        # k = 4 drawn from the six active validators, this node among them:
        # it votes itself, without a query.
        self.assertIn(len(queries), (3, 4))
        self.assertEqual(len({q.validator for q in queries}), len(queries))
        self.assertNotIn("me", {q.validator for q in queries})
        self.assertEqual({q.txids for q in queries}, {("a", "b")})
        self.assertEqual({q.poll_id for q in queries}, {1})
        self.assertIsInstance(queries[0], Query)
        self.assertEqual(self.manager.next_deadline(), 2.0)

    def test_batching_is_bounded(self):
        manager, engine, _, _ = make(batch_limit=3)
        for index in range(5):
            engine.add(f"t{index}", [index])
        queries = manager.start_poll(0.0)
        self.assertEqual(queries[0].txids, ("t0", "t1", "t2"))

    def test_replies_finish_poll_and_decide(self):
        self.engine.add("a", ["o1"])
        self.assertEqual(answer_all(self.manager, self.manager.start_poll(0.0)), [])
        self.assertEqual(self.manager.polls_in_flight, 0)
        decisions = answer_all(self.manager, self.manager.start_poll(0.1))
        self.assertEqual(decisions, [("a", True, "finalized")])
        self.assertEqual(self.engine.status("a"), ACCEPTED)
        self.assertEqual(self.manager.stats.completed, 2)

    def test_max_polls_in_flight(self):
        manager, engine, _, _ = make(max_polls=2)
        engine.add("a", ["o1"])
        self.assertTrue(manager.start_poll(0.0))
        self.assertTrue(manager.start_poll(0.1))
        self.assertFalse(manager.can_start())
        self.assertEqual(manager.start_poll(0.2), [])
        self.assertEqual(manager.polls_in_flight, 2)

    def test_timeout_counts_missing_as_no_and_penalizes(self):
        self.engine.add("a", ["o1"])
        queries = self.manager.start_poll(0.0)
        # One "no": the outcome still hangs on the silent validators.
        self.manager.on_reply(queries[0].poll_id, queries[0].validator, [False])
        self.assertEqual(self.manager.on_tick(1.999), [])
        self.assertEqual(self.manager.polls_in_flight, 1)
        self.assertEqual(self.manager.on_tick(2.0), [])
        self.assertEqual(self.manager.polls_in_flight, 0)
        self.assertEqual(self.manager.stats.expired, 1)
        self.assertEqual(self.manager.stats.missing_replies, len(queries) - 1)
        self.assertEqual(self.reputation.timeouts, len(queries) - 1)
        silent = {q.validator for q in queries[1:]}
        self.assertEqual(set(self.reputation.penalized()), silent)
        snapshot = self.engine.snapshot("a")
        self.assertEqual((snapshot.rounds, snapshot.confidence), (1, 0))

    def test_late_reply_after_timeout_is_ignored(self):
        self.engine.add("a", ["o1"])
        queries = self.manager.start_poll(0.0)
        self.manager.on_tick(5.0)
        self.manager.on_reply(queries[0].poll_id, queries[0].validator, [True])
        self.assertEqual(self.manager.stats.ignored["unknown-poll"], 1)

    def test_bad_replies_ignored_and_counted(self):
        self.engine.add("a", ["o1"])
        self.engine.add("b", ["o2"])
        queries = self.manager.start_poll(0.0)
        poll_id, first = queries[0].poll_id, queries[0].validator
        outsider = ({f"v{i}" for i in range(5)} - {q.validator for q in queries}).pop()
        self.manager.on_reply(poll_id, outsider, [True, True])
        self.manager.on_reply(poll_id, "me", [True, True])
        self.manager.on_reply(poll_id, first, [True])
        self.manager.on_reply(poll_id, first, "yes")
        self.manager.on_reply(poll_id, first, [1, 0])
        self.manager.on_reply(poll_id, first, [True, False])
        self.manager.on_reply(poll_id, first, [True, True])
        self.manager.on_reply(99, first, [True, True])
        self.assertEqual(dict(self.manager.stats.ignored), {
            "not-sampled": 2, "bad-length": 2, "bad-vote": 1, "duplicate": 1, "unknown-poll": 1,
        })
        self.assertEqual(self.manager.stats.replies, 1)
        self.assertEqual(self.manager.polls_in_flight, 1)

    def test_votes_never_change_sampling_weights(self):
        self.engine.add("a", ["o1"])
        self.engine.add("b", ["o1"])
        for step in range(3):
            queries = self.manager.start_poll(float(step))
            for index, query in enumerate(queries):
                votes = [True, False] if index else [False, True]
                self.manager.on_reply(query.poll_id, query.validator, votes)
        self.engine.add("c", ["o2"])
        queries = self.manager.start_poll(5.0)
        for index, query in enumerate(queries):
            self.manager.on_reply(query.poll_id, query.validator, [index > 0] * 3)
        self.assertEqual(self.reputation.penalized(), {})

    def test_small_network_quorum_is_strict_majority_of_sample(self):
        manager, engine, _, _ = make(validators=2)
        engine.add("a", ["o1"])
        queries = manager.start_poll(0.0)
        self.assertEqual(len(queries), 2)
        manager.on_reply(queries[0].poll_id, queries[0].validator, [True])
        manager.on_reply(queries[1].poll_id, queries[1].validator, [False])
        self.assertEqual(engine.snapshot("a").confidence, 0)

    def test_no_validators_means_no_poll(self):
        manager, engine, _, _ = make(validators=0)
        manager.set_validators({})
        engine.add("a", ["o1"])
        self.assertFalse(manager.can_start())
        self.assertEqual(manager.start_poll(0.0), [])

    def test_cancel_forgets_only_what_was_never_polled(self):
        self.engine.add("a", ["o1"])
        self.assertTrue(self.manager.cancel("a"))
        self.assertIsNone(self.engine.status("a"))
        self.engine.add("b", ["o2"])
        answer_all(self.manager, self.manager.start_poll(0.0))
        self.assertFalse(self.manager.cancel("b"))
        self.assertEqual(self.engine.status("b"), PENDING)

    def test_set_validators(self):
        self.engine.add("a", ["o1"])
        self.manager.set_validators({"x": 1, "me": 1})
        self.assertEqual([q.validator for q in self.manager.start_poll(0.0)], ["x"])
        self.assertEqual(self.engine.status("a"), PENDING)

    def test_bad_settings(self):
        engine = SnowballEngine(SnowballParams())
        reputation = Reputation(FakeClock())
        for kwargs in ({"query_timeout_ms": 0}, {"max_polls": 0}, {"batch_limit": 0}):
            self.assertRaises(ValueError, PollManager, engine, reputation, random.Random(0),
                              "me", **kwargs)
