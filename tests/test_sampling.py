"""Tests for timecoin.consensus.sampling: weighted sampling and reputation."""

import random
from collections import Counter

from twisted.trial import unittest

from timecoin.consensus.sampling import Reputation, weighted_sample


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class WeightedSampleTests(unittest.TestCase):
    def test_no_duplicates_and_self_excluded(self):
        rng = random.Random(7)
        weights = {f"v{i}": 1 + i % 5 for i in range(100)}
        for _ in range(200):
            sample = weighted_sample(weights, 20, rng, exclude=("v3",))
            self.assertEqual(len(sample), 20)
            self.assertEqual(len(set(sample)), 20)
            self.assertNotIn("v3", sample)

    def test_small_network_samples_all_others(self):
        rng = random.Random(1)
        weights = {"me": 1, "a": 5, "b": 1, "c": 2}
        self.assertEqual(weighted_sample(weights, 20, rng, exclude=("me",)), ["a", "b", "c"])
        self.assertEqual(weighted_sample({"me": 1}, 20, rng, exclude=("me",)), [])
        self.assertEqual(weighted_sample(weights, 0, rng), [])

    def test_non_positive_weights_never_drawn(self):
        rng = random.Random(2)
        weights = {"a": 1, "b": 0, "c": -3, "d": 1, "e": 1}
        for _ in range(100):
            self.assertNotIn("b", weighted_sample(weights, 2, rng))
            self.assertNotIn("c", weighted_sample(weights, 2, rng))

    def test_weights_respected(self):
        rng = random.Random(3)
        weights = {"a": 1, "b": 2, "c": 3, "d": 4}
        counts = Counter(weighted_sample(weights, 1, rng)[0] for _ in range(20000))
        for validator, weight in weights.items():
            self.assertLess(abs(counts[validator] / 20000 - weight / 10), 0.015)

    def test_without_replacement_favours_heavy_validators(self):
        rng = random.Random(4)
        weights = {"heavy": 10, **{f"light{i}": 1 for i in range(20)}}
        counts = Counter()
        for _ in range(2000):
            counts.update(weighted_sample(weights, 5, rng))
        self.assertGreater(counts["heavy"], 1650)
        self.assertLess(abs(sum(counts[f"light{i}"] for i in range(20)) / 20 - 400), 40)

    def test_deterministic_for_a_seed(self):
        weights = {i: 1 + i for i in range(50)}
        one = [weighted_sample(weights, 10, random.Random(9)) for _ in range(3)]
        self.assertEqual(one[0], one[1])
        self.assertEqual(one[1], one[2])


class ReputationTests(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock()
        self.reputation = Reputation(self.clock, half_life_s=100.0)

    def test_penalties_and_floor(self):
        self.assertEqual(self.reputation.multiplier("a"), 1.0)
        self.reputation.record_timeout("a")
        self.assertAlmostEqual(self.reputation.multiplier("a"), 0.5)
        self.reputation.record_timeout("a")
        self.assertAlmostEqual(self.reputation.multiplier("a"), 0.25)
        for _ in range(50):
            self.reputation.record_timeout("a")
        self.assertAlmostEqual(self.reputation.multiplier("a"), 0.05)
        self.assertEqual(self.reputation.timeouts, 52)

    def test_votes_have_no_lever_on_weights(self):
        # Only timeouts are recorded: there is no way to penalize a vote.
        self.assertFalse(hasattr(self.reputation, "record_contrary"))
        self.assertFalse(hasattr(self.reputation, "record_dissent"))

    def test_recovers_with_half_life(self):
        self.reputation.record_timeout("a")
        self.clock.now = 100.0
        self.assertAlmostEqual(self.reputation.multiplier("a"), 0.75)
        self.clock.now = 200.0
        self.assertAlmostEqual(self.reputation.multiplier("a"), 0.875)
        self.clock.now = 5000.0
        self.assertEqual(self.reputation.multiplier("a"), 1.0)
        self.assertEqual(self.reputation.penalized(), {})

    def test_adjusted_weights(self):
        self.reputation.record_timeout("b")
        self.assertEqual(self.reputation.adjusted({"a": 4, "b": 4}), {"a": 4, "b": 2.0})
        self.assertEqual(self.reputation.penalized(), {"b": 0.5})

    def test_bad_settings(self):
        for kwargs in ({"floor": 0}, {"timeout_penalty": 0}, {"timeout_penalty": 1.5},
                       {"half_life_s": 0}):
            self.assertRaises(ValueError, Reputation, self.clock, **kwargs)

    def test_always_timing_out_validator_sampled_less_but_never_excluded(self):
        rng = random.Random(5)
        weights = {f"v{i}": 1 for i in range(40)}
        counts = Counter()
        for _ in range(3000):
            self.clock.now += 1.0
            sample = weighted_sample(self.reputation.adjusted(weights), 10, rng)
            counts.update(sample)
            if "v0" in sample:
                self.reputation.record_timeout("v0")
        honest_mean = sum(counts[f"v{i}"] for i in range(1, 40)) / 39
        self.assertLess(counts["v0"], honest_mean / 4)
        self.assertGreater(counts["v0"], 0)
        self.assertGreaterEqual(self.reputation.multiplier("v0"), self.reputation.floor)
