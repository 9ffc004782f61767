"""Tests for timecoin.consensus.snowball: parameters, quorum math and the engine."""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from timecoin.consensus.snowball import (
    ACCEPTED,
    PENDING,
    REJECTED,
    SnowballEngine,
    SnowballParams,
)


def small(**overrides):
    values = {"k": 4, "alpha": 0.75, "beta": 5, "finality_confidence": 3, "max_rounds": 10}
    values.update(overrides)
    return SnowballParams(**values)


def poll(engine, yes, size, txids):
    return engine.record_poll({t: (yes, size) for t in txids})


class ParamsTests(unittest.TestCase):
    def test_defaults_match_testnet_preset(self):
        params = SnowballParams()
        self.assertEqual(
            (params.k, params.alpha, params.beta, params.finality_confidence, params.max_rounds),
            (20, 0.75, 15, 15, 30),
        )

    def test_from_config_uses_spec_keys(self):
        params = SnowballParams.from_config({"sample_size": 50, "beta": 20,
                                             "finality_confidence": 20, "max_rounds": 50})
        self.assertEqual((params.k, params.beta, params.max_rounds), (50, 20, 50))

    def test_invalid_values_name_the_key(self):
        for kwargs, key in [
            ({"alpha": 0.5}, "alpha"),
            ({"alpha": 1.01}, "alpha"),
            ({"alpha": "0.8"}, "alpha"),
            ({"k": 0}, "sample_size"),
            ({"beta": 0}, "beta"),
            ({"finality_confidence": 1.5}, "finality_confidence"),
            ({"max_rounds": 10, "beta": 11}, "max_rounds"),
            ({"alpha_preference": 0.9}, "alpha_preference"),
        ]:
            with self.assertRaises(ValueError) as caught:
                small(**kwargs)
            self.assertIn(key, str(caught.exception))

    def test_quorum_is_a_strict_majority_of_small_samples(self):
        params = SnowballParams()
        self.assertEqual([params.quorum(n) for n in (1, 2, 3, 4)], [1, 2, 3, 3])
        self.assertEqual(params.quorum(20), 15)
        self.assertEqual(params.quorum(50), 38)
        self.assertEqual(params.quorum(0), 1)

    def test_quorum_never_below_majority(self):
        loose = SnowballParams(alpha=0.51)
        for n in range(1, 101):
            self.assertGreater(2 * loose.quorum(n), n)
            self.assertGreaterEqual(loose.quorum(n), 0.51 * n)

    def test_quorum_exact_arithmetic(self):
        self.assertEqual(SnowballParams(alpha=0.7).quorum(10), 7)
        self.assertEqual(SnowballParams(alpha=1.0).quorum(20), 20)

    def test_preference_quorum(self):
        self.assertEqual(SnowballParams().preference_quorum(20), 15)
        self.assertEqual(SnowballParams(alpha=0.7).preference_quorum(20), 14)
        self.assertEqual(SnowballParams(alpha_preference=0.6).preference_quorum(20), 12)
        self.assertEqual(SnowballParams().preference_quorum(1), 1)


class EngineTests(unittest.TestCase):
    def setUp(self):
        self.engine = SnowballEngine(small())

    def test_uncontested_finalizes_after_finality_confidence(self):
        self.engine.add("a", ["o1"])
        self.assertEqual(self.engine.status("a"), PENDING)
        self.assertEqual(poll(self.engine, 3, 4, ["a"]), [])
        self.assertEqual(poll(self.engine, 4, 4, ["a"]), [])
        self.assertEqual(poll(self.engine, 3, 4, ["a"]), [("a", True, "finalized")])
        self.assertEqual(self.engine.status("a"), ACCEPTED)
        self.assertTrue(self.engine.is_preferred("a"))
        self.assertEqual(self.engine.stats.rounds_to_accept, {3: 1})

    def test_failed_round_resets_confidence(self):
        self.engine.add("a", ["o1"])
        poll(self.engine, 3, 4, ["a"])
        poll(self.engine, 3, 4, ["a"])
        poll(self.engine, 2, 4, ["a"])  # 2 of 4 is not a strict majority
        self.assertEqual(self.engine.snapshot("a").confidence, 0)
        self.assertEqual(self.engine.snapshot("a").strength, 2)
        for _ in range(2):
            self.assertEqual(poll(self.engine, 3, 4, ["a"]), [])
        self.assertEqual(poll(self.engine, 3, 4, ["a"]), [("a", True, "finalized")])
        self.assertEqual(self.engine.stats.failed_rounds, 1)

    def test_quorum_follows_actual_sample_size(self):
        self.engine.add("a", ["o1"])
        for size in (1, 2, 3):
            poll(self.engine, size, size, ["a"])
        self.assertEqual(self.engine.status("a"), ACCEPTED)
        self.engine.add("b", ["o2"])
        poll(self.engine, 0, 0, ["b"])
        poll(self.engine, 1, 2, ["b"])
        self.assertEqual(self.engine.snapshot("b").confidence, 0)

    def test_contested_needs_beta_and_rejects_conflicts(self):
        self.engine.add("a", ["o1"])
        self.engine.add("b", ["o1"])
        self.assertTrue(self.engine.is_preferred("a"))
        self.assertFalse(self.engine.is_preferred("b"))
        self.assertEqual(self.engine.conflicts("a"), {"b"})
        for _ in range(4):
            self.assertEqual(self.engine.record_poll({"a": (4, 4), "b": (0, 4)}), [])
        decisions = self.engine.record_poll({"a": (4, 4), "b": (0, 4)})
        self.assertEqual(decisions, [("a", True, "finalized"), ("b", False, "conflict")])
        self.assertEqual(self.engine.status("b"), REJECTED)
        self.assertFalse(self.engine.is_preferred("b"))
        self.assertEqual(len(self.engine), 0)

    def test_success_of_a_conflict_resets_confidence(self):
        self.engine.add("a", ["o1"])
        self.engine.add("b", ["o1"])
        for _ in range(3):
            self.engine.record_poll({"a": (4, 4)})
        self.engine.record_poll({"b": (4, 4)})
        self.assertEqual(self.engine.snapshot("a").confidence, 0)
        self.assertEqual(self.engine.snapshot("b").confidence, 1)

    def test_both_conflicts_at_quorum_is_ambiguous(self):
        self.engine.add("a", ["o1"])
        self.engine.add("b", ["o1"])
        self.engine.record_poll({"a": (4, 4), "b": (4, 4)})
        self.assertEqual(self.engine.snapshot("a").confidence, 0)
        self.assertEqual(self.engine.snapshot("b").confidence, 0)
        self.assertEqual(self.engine.stats.ambiguous_rounds, 2)
        self.assertEqual(self.engine.stats.preference_flips, 0)

    def test_preference_flips_on_greater_strength(self):
        self.engine.add("a", ["o1"])
        self.engine.add("b", ["o1"])
        self.engine.record_poll({"a": (1, 4), "b": (3, 4)})
        self.assertTrue(self.engine.is_preferred("b"))
        self.assertFalse(self.engine.is_preferred("a"))
        self.assertEqual(self.engine.stats.preference_flips, 1)
        self.engine.record_poll({"a": (3, 4), "b": (1, 4)})  # a tie keeps the preference
        self.assertTrue(self.engine.is_preferred("b"))
        self.engine.record_poll({"a": (3, 4), "b": (1, 4)})
        self.assertTrue(self.engine.is_preferred("a"))
        self.assertEqual(self.engine.stats.preference_flips, 2)

    def test_tie_never_moves_preference_to_the_larger_txid(self):
        self.engine.add("a", ["o1"])
        self.engine.add("b", ["o1"])
        self.engine.record_poll({"a": (3, 4), "b": (1, 4)})
        self.engine.record_poll({"a": (1, 4), "b": (3, 4)})  # tie: "a" stays preferred
        self.assertTrue(self.engine.is_preferred("a"))
        self.assertEqual(self.engine.stats.preference_flips, 0)

    def test_multi_input_tx_preferred_only_in_every_set(self):
        self.engine.add("a", ["o1", "o2"])
        self.engine.add("b", ["o2", "o3"])
        self.engine.add("c", ["o3"])
        self.assertEqual(self.engine.votes(["a", "b", "c", "zz"]), [True, False, False, False])
        self.assertTrue(self.engine.is_contested("c"))
        decisions = []
        for _ in range(5):  # beta: "a" is contested
            decisions += self.engine.record_poll({"a": (4, 4), "c": (4, 4)})
        self.assertEqual(decisions, [("a", True, "finalized"), ("b", False, "conflict"),
                                     ("c", True, "finalized")])
        self.assertEqual(self.engine.votes(["a", "b", "c"]), [True, False, True])

    def test_max_rounds_stalls_and_never_frees_the_coin(self):
        self.engine.add("a", ["o1"])
        for _ in range(9):
            self.assertEqual(poll(self.engine, 2, 4, ["a"]), [])
        self.assertFalse(self.engine.is_stalled("a"))
        self.assertEqual(poll(self.engine, 2, 4, ["a"]), [])
        self.assertEqual(self.engine.status("a"), PENDING)
        self.assertTrue(self.engine.is_stalled("a"))
        self.assertEqual(self.engine.snapshot("a").reason, "stalled")
        self.assertEqual(self.engine.stats.stalled, 1)
        self.assertFalse(self.engine.cancel("a"))  # it was polled: it stays bound
        # A later spend of the same coin joins the set as a contender.
        self.assertEqual(self.engine.add("c", ["o1"]), [])
        self.assertEqual(self.engine.conflicts("c"), {"a"})
        self.assertTrue(self.engine.is_contested("c"))
        self.assertEqual(self.engine.votes(["a", "c"]), [True, False])
        # Polling slows down but goes on.
        included = [("a" in self.engine.in_flight()) for _ in range(40)]
        self.assertGreater(sum(included), 2)
        self.assertLess(sum(included), 20)
        # A stalled set is still decided by polls.
        decisions = []
        for _ in range(5):
            decisions += poll(self.engine, 4, 4, ["c"])
        self.assertEqual(decisions, [("c", True, "finalized"), ("a", False, "conflict")])

    def test_a_block_decides_a_stalled_set_and_votes_follow(self):
        self.engine.add("a", ["o1"])
        self.engine.add("b", ["o1"])
        self.engine.add("x", ["o2"])
        self.assertEqual(self.engine.stalled_sets(), [])
        for _ in range(10):
            poll(self.engine, 2, 4, ["a", "b"])
        self.assertTrue(self.engine.is_stalled("a"))
        self.assertEqual(self.engine.stalled_sets(), [[("a", 0), ("b", 0)]])
        self.assertEqual(self.engine.votes(["a", "b"]), [True, False])
        decisions = self.engine.decide_by_block("b", 7)
        self.assertEqual(decisions, [("b", True, "decided-by-block"),
                                     ("a", False, "conflict: decided by block 7")])
        self.assertEqual((self.engine.status("a"), self.engine.status("b")), (REJECTED, ACCEPTED))
        self.assertEqual(self.engine.votes(["a", "b"]), [False, True])
        self.assertEqual(self.engine.stalled_sets(), [])
        # Final: a second decision changes nothing, a later spend is a double spend.
        self.assertEqual(self.engine.decide_by_block("a", 8), [])
        self.assertEqual(self.engine.add("c", ["o1"]), [("c", False, "double-spend")])
        self.assertEqual(self.engine.status("x"), PENDING)

    def test_a_block_vote_never_contradicts_an_answer(self):
        self.engine.add("a", ["o1"])
        self.engine.add("b", ["o1"])
        self.engine.add("x", ["o2"])
        # Not yet answered: either member may be decided by a block.
        self.assertTrue(self.engine.may_decide_by_block("a"))
        self.assertTrue(self.engine.may_decide_by_block("b"))
        self.assertEqual(self.engine.votes(["a", "b"]), [True, False])
        # "yes" for a: a block deciding b would contradict it.
        self.assertTrue(self.engine.may_decide_by_block("a"))
        self.assertFalse(self.engine.may_decide_by_block("b"))
        self.assertFalse(self.engine.vote_for_block("b"))
        self.assertFalse(self.engine.may_decide_by_block("unknown"))
        self.assertTrue(self.engine.vote_for_block("x"))

    def test_a_block_vote_pins_the_set(self):
        self.engine.add("a", ["o1"])
        self.engine.add("b", ["o1"])
        self.engine.dirty_records()
        # a came first and is preferred; a block vote for b pins the set to b,
        # and the pin is saved (restored after a restart).
        self.assertTrue(self.engine.vote_for_block("b"))
        self.assertEqual([r.preferred for r in self.engine.dirty_records()], ["b"])
        self.assertEqual(self.engine.votes(["a", "b"]), [False, True])
        self.assertFalse(self.engine.may_decide_by_block("a"))

    def test_a_reloaded_set_is_never_decided_by_a_block_vote_here(self):
        self.engine.add("a", ["o1"])
        self.engine.add("b", ["o1"])
        self.engine.votes(["a"])
        records = self.engine.dirty_records()
        restarted = SnowballEngine(self.engine.params)
        restarted.restore(records)
        # Earlier answers are not all known after a restart: refuse both.
        self.assertFalse(restarted.may_decide_by_block("a"))
        self.assertFalse(restarted.may_decide_by_block("b"))

    def test_cancel(self):
        self.engine.add("a", ["o1"])
        self.engine.add("b", ["o1"])
        self.assertTrue(self.engine.cancel("a"))
        self.assertFalse(self.engine.cancel("a"))
        self.assertIsNone(self.engine.status("a"))
        self.assertTrue(self.engine.is_preferred("b"))
        self.assertEqual(self.engine.record_poll({"a": (4, 4)}), [])

    def test_cancel_refused_once_polled_or_voted(self):
        self.engine.add("a", ["o1"])
        self.engine.add("b", ["o2"])
        self.engine.votes(["a"])
        poll(self.engine, 0, 4, ["b"])
        self.assertFalse(self.engine.cancel("a"))
        self.assertFalse(self.engine.cancel("b"))
        self.assertEqual(len(self.engine), 2)

    def test_double_spend_of_an_accepted_outpoint(self):
        self.engine.add("a", ["o1"])
        for _ in range(3):
            poll(self.engine, 4, 4, ["a"])
        self.assertEqual(self.engine.add("b", ["o1", "o9"]), [("b", False, "double-spend")])
        self.assertEqual(self.engine.add("a", ["o1"]), [])
        self.assertEqual(self.engine.status("a"), ACCEPTED)

    def test_in_flight_is_bounded_and_oldest_first(self):
        for index in range(5):
            self.engine.add(f"t{index}", [index])
        self.assertEqual(self.engine.in_flight(3), ["t0", "t1", "t2"])
        self.assertEqual(len(self.engine.in_flight()), 5)

    def test_decisions_are_remembered_up_to_a_bound(self):
        engine = SnowballEngine(small(finality_confidence=1), remember=2)
        for index in range(3):
            engine.add(index, [index])
            poll(engine, 4, 4, [index])
        self.assertIsNone(engine.status(0))
        self.assertEqual(engine.status(2), ACCEPTED)


TXS = {f"t{i}": ops for i, ops in enumerate(
    [["o1"], ["o1"], ["o1", "o2"], ["o2"], ["o3"], ["o3", "o4"], ["o4"], ["o5"]]
)}
operation = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(sorted(TXS))),
    st.tuples(st.just("cancel"), st.sampled_from(sorted(TXS))),
    st.tuples(
        st.just("poll"),
        st.dictionaries(st.sampled_from(sorted(TXS)),
                        st.integers(0, 5).flatmap(lambda n: st.tuples(st.integers(0, n),
                                                                      st.just(n)))),
    ),
)


class EnginePropertyTests(unittest.TestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.lists(operation, max_size=80), st.integers(1, 3), st.integers(1, 3))
    def test_never_two_conflicting_accepted_and_decisions_final(self, ops, fc, beta):
        engine = SnowballEngine(small(finality_confidence=fc, beta=beta, max_rounds=6))
        decided = {}
        for kind, arg in ops:
            if kind == "add":
                decisions = engine.add(arg, TXS[arg])
            elif kind == "cancel":
                engine.cancel(arg)
                decisions = []
            else:
                decisions = engine.record_poll(arg)
            for txid, accepted, _reason in decisions:
                self.assertNotIn(txid, decided)
                decided[txid] = accepted
            for txid, accepted in decided.items():
                self.assertEqual(engine.status(txid), ACCEPTED if accepted else REJECTED)
            accepted = [t for t, ok in decided.items() if ok]
            for a in accepted:
                for b in accepted:
                    if a != b:
                        self.assertFalse(set(TXS[a]) & set(TXS[b]), (a, b))
            for txid in engine.in_flight():
                self.assertEqual(engine.status(txid), PENDING)
                self.assertNotIn(txid, decided)
