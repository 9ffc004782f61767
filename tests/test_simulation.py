"""Seeded multi-node simulations of Snowball finality: a reduced safety battery.

The full battery (100 and 4 nodes, 20 seeds) is ``python -m
timecoin.consensus.simulation --battery``; its figures are in doc/snowball.md.
"""

from twisted.trial import unittest

from timecoin.consensus.scenarios import BATTERY, battery, format_rows, run_scenario, summarize
from timecoin.consensus.simulation import STRATEGIES, Simulation
from timecoin.consensus.snowball import SnowballParams

#: Reduced but seeded: small networks, two seeds, the whole scenario list.
SEEDS = (1, 2)


class HonestNetworkTests(unittest.TestCase):
    def test_uncontested_finalize_within_finality_confidence(self):
        sim = Simulation(60, seed=11, latency_s=(0.005, 0.15), loss=0.01)
        for index in range(8):
            sim.submit(f"t{index}", [("coin", index)], at=index * 0.05)
        report = sim.run(until=20.0)
        fc = sim.params.finality_confidence
        self.assertTrue(report.safe)
        self.assertEqual(set(report.accepted_share.values()), {1.0})
        self.assertEqual(min(report.rounds_to_accept), fc)
        self.assertGreater(report.dropped, 0)

    def test_same_seed_same_run(self):
        first = summarize([run_scenario(20, seed=5, strategy="equivocate", share=0.2)])
        second = summarize([run_scenario(20, seed=5, strategy="equivocate", share=0.2)])
        self.assertEqual(first, second)

    def test_four_nodes_decide_with_one_down(self):
        params = SnowballParams(finality_confidence=3, beta=3, max_rounds=10)
        sim = Simulation(4, params=params, seed=2)
        sim.restart(3, at=0.0, down_s=100.0)
        sim.submit("t", ["o"], first_nodes=[0])
        report = sim.run(until=30.0)
        self.assertEqual(report.decided_share["t"], 0.75)
        self.assertEqual(report.accepted_share["t"], 0.75)

    def test_two_of_four_never_decide(self):
        sim = Simulation(4, seed=2)
        sim.partition([[0, 1], [2, 3]], 0.0, 100.0)
        sim.submit("a", ["o"], first_nodes=[0, 1], gossip=False)
        sim.submit("b", ["o"], first_nodes=[2, 3], gossip=False)
        report = sim.run(until=60.0)
        self.assertEqual(report.decided_share, {"a": 0.0, "b": 0.0})
        self.assertEqual(report.polls, 0)
        self.assertGreater(report.aborted_polls, 0)

    def test_eclipsed_node_never_polls(self):
        sim = Simulation(100, seed=4)
        sim.eclipse(0, keep=[1])
        sim.submit("t", ["o"], first_nodes=[0], gossip=False)
        sim.run(until=10.0)
        polls = sim.nodes[0].polls
        self.assertEqual(polls.stats.started, 0)
        self.assertGreater(polls.stats.aborted, 0)
        self.assertIn("insufficient-connected-stake", polls.abort_reason)
        self.assertNotIn("t", sim.nodes[0].decisions)


class BatteryTests(unittest.TestCase):
    """Every battery scenario, reduced: 0 violations, uncontested transactions finalize."""

    def check(self, n_nodes, names, **kwargs):
        scenarios = [(name, opts) for name, opts in BATTERY if name in names]
        self.assertEqual(len(scenarios), len(names))
        rows = battery(n_nodes, SEEDS, scenarios, **kwargs)
        for name, row in rows:
            self.assertEqual(row["violations"], 0, name)
            if "byzantine" not in name:
                self.assertEqual(row["uncontested_finalized"], 1.0, (name, row))
        self.assertIn("| violations |", format_rows(rows))

    def test_loss_partitions_restarts_at_four_nodes(self):
        self.check(4, [name for name, _ in BATTERY if "byzantine" not in name])

    def test_loss_partitions_restarts_at_twenty_nodes(self):
        self.check(20, ["loss 5% then re-spends", "loss 20% then re-spends", "partition 70/30",
                        "one node isolated", "restart a third mid-decision"], end=20.0)

    def test_byzantine_strategies_at_a_third(self):
        names = [f"byzantine {s} 33%" for s in STRATEGIES]
        self.check(12, names, end=15.0)
