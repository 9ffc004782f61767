"""Seeded multi-node simulations of Snowball finality."""

from twisted.trial import unittest

from timecoin.consensus.simulation import (
    ALWAYS_FLIP,
    ALWAYS_REJECT,
    EQUIVOCATE,
    NEVER_ANSWER,
    STRATEGIES,
    Simulation,
    contested_scenario,
    format_sweep,
    reputation_waves,
    sweep,
)
from timecoin.consensus.snowball import SnowballParams

NETWORK = {"latency_s": (0.005, 0.15), "loss": 0.01}


class HonestNetworkTests(unittest.TestCase):
    def test_uncontested_finalize_within_finality_confidence(self):
        sim = Simulation(200, seed=11, **NETWORK)
        for index in range(8):
            sim.submit(f"t{index}", [("coin", index)], at=index * 0.05)
        report = sim.run()
        fc = sim.params.finality_confidence
        self.assertTrue(report.safe)
        self.assertEqual(set(report.accepted_share.values()), {1.0})
        self.assertEqual(min(report.rounds_to_accept), fc)
        self.assertLessEqual(max(report.rounds_to_accept), fc + 3)
        self.assertGreater(report.dropped, 0)
        self.assertGreater(report.polls, 1000)

    def test_contested_pair_converges_on_one_side(self):
        sim = contested_scenario(None, 0.0, n_nodes=200, prefer_a=0.6, uncontested=2,
                                 seed=3, **NETWORK)
        report = sim.report()
        self.assertTrue(report.safe)
        self.assertGreater(report.accepted_share["c0a"], 0.9)
        self.assertEqual(report.accepted_share["c0b"], 0.0)
        self.assertGreater(report.preference_flips, 0)

    def test_same_seed_same_run(self):
        first = contested_scenario(EQUIVOCATE, 0.1, n_nodes=60, seed=5, **NETWORK).report()
        second = contested_scenario(EQUIVOCATE, 0.1, n_nodes=60, seed=5, **NETWORK).report()
        self.assertEqual(first, second)

    def test_small_network_of_four(self):
        params = SnowballParams(finality_confidence=3, beta=3, max_rounds=10)
        sim = Simulation(4, params=params, seed=2)
        sim.submit("t", ["o"])
        report = sim.run()
        self.assertEqual(report.accepted_share["t"], 1.0)
        self.assertEqual(dict(report.rounds_to_accept), {3: 4})


class ByzantineTests(unittest.TestCase):
    """The governance split of avalanchego's tests: 55 % / 35 % honest, 10 % byzantine."""

    def check(self, strategy):
        sim = contested_scenario(strategy, 0.1, n_nodes=200, prefer_a=55 / 90, uncontested=3,
                                 seed=21, **NETWORK)
        self.assertAlmostEqual(sim.byzantine_share(), 0.1)
        report = sim.report()
        self.assertTrue(report.safe, report.conflicting_finalizations)
        for txid in ("u0", "u1", "u2"):
            self.assertGreater(report.accepted_share[txid], 0.9)
        self.assertGreater(report.accepted_share["c0a"] + report.accepted_share["c0b"], 0.5)
        return sim

    def test_always_reject(self):
        self.check(ALWAYS_REJECT)

    def test_always_flip(self):
        self.check(ALWAYS_FLIP)

    def test_equivocate(self):
        self.check(EQUIVOCATE)

    def test_never_answer(self):
        sim = self.check(NEVER_ANSWER)
        self.assertGreater(sum(n.polls.stats.expired for n in sim.honest_nodes), 0)

    def test_reputation_restores_liveness(self):
        with_rep = reputation_waves(ALWAYS_REJECT, 0.2, waves=4, n_nodes=100, **NETWORK)
        without = reputation_waves(ALWAYS_REJECT, 0.2, waves=4, n_nodes=100,
                                   reputation=False, **NETWORK)
        self.assertLess(max(without), 0.5)
        self.assertGreater(with_rep[-1], 0.9)
        self.assertGreater(with_rep[-1], with_rep[0])

    def test_small_sweep(self):
        rows = sweep(shares=(0.0, 0.3), strategies=STRATEGIES, n_nodes=40, seeds=(1,), pairs=1,
                     uncontested=1, **NETWORK)
        self.assertEqual(len(rows), 8)
        for strategy, share, unsafe, _runs, live, _pairs, _split, _rounds in rows:
            self.assertEqual(unsafe, 0, (strategy, share))
            if share == 0.0:
                self.assertEqual(live, 1.0)
        self.assertIn("| always-flip | 30% |", format_sweep(rows))
