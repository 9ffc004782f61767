"""Seeded simulations of the BFT round machine: safety always, liveness after GST
with less than 1/3 of the stake faulty (a reduced set of the doc/bft.md runs)."""

from twisted.trial import unittest

from timecoin.consensus.bft_sim import Scenario, run_scenario
from timecoin.consensus.proposer import ProposerPriorities, ValidatorSet


class SimulationTests(unittest.TestCase):
    """Never two blocks at one height; progress when > 2/3 is connected."""

    def check(self, scenario):
        result = run_scenario(scenario)
        self.assertTrue(result.safe, result.conflicting_heights)
        self.assertGreaterEqual(result.heights_committed, scenario.heights, result)
        return result

    def test_clean_network_many_heights(self):
        for seed in range(3):
            self.check(Scenario(stakes=(1, 1, 1, 1), heights=400, seed=seed))

    def test_loss_partition_crash_and_silence(self):
        for seed in range(3):
            self.check(Scenario(stakes=(5, 3, 2, 1, 1, 1, 1), heights=150, seed=seed,
                                faults={6: "crashed", 5: "silent"}, loss=0.1, gst=20.0,
                                partition=((0, 1), (2, 3, 4))))

    def test_equivocating_and_lying_below_one_third(self):
        for seed in range(2):
            result = self.check(Scenario(stakes=(1,) * 7, heights=100, seed=seed, loss=0.2,
                                         gst=30.0, faults={0: "equivocating", 1: "lying"}))
            self.assertGreater(result.evidence, 0)

    def test_lying_proposers_by_stake(self):
        self.check(Scenario(stakes=(10, 10, 10, 3, 3, 3, 3, 3, 3), heights=200, seed=7,
                            faults={0: "lying", 3: "lying"}, loss=0.05, gst=10.0))

    def test_no_progress_without_quorum(self):
        result = run_scenario(Scenario(stakes=(1, 1, 1, 1), heights=5, seed=1,
                                       faults={0: "crashed", 1: "crashed"}, time_limit=60.0))
        self.assertTrue(result.safe)
        self.assertEqual(result.heights_committed, 0)


class ProposerRotationTests(unittest.TestCase):
    """Proposers are chosen in proportion to stake, evenly."""

    def test_frequencies_match_stake(self):
        stakes = {b"a": 1, b"b": 2, b"c": 3, b"d": 10}
        priorities = ProposerPriorities(ValidatorSet.from_stakes(stakes))
        counts = dict.fromkeys(stakes, 0)
        for _ in range(16 * 100):
            counts[priorities.proposer(0)] += 1
            priorities.advance()
        self.assertEqual(counts, {v: s * 100 for v, s in stakes.items()})

    def test_rounds_rotate_and_joiner_waits(self):
        validators = ValidatorSet.from_stakes({b"a": 1, b"b": 1, b"c": 1})
        priorities = ProposerPriorities(validators)
        self.assertEqual(len({priorities.proposer(r) for r in range(3)}), 3)
        bigger = ValidatorSet.from_stakes({b"a": 1, b"b": 1, b"c": 1, b"z": 3})
        joined = priorities.with_validators(bigger)
        self.assertNotEqual(joined.proposer(0), b"z")
