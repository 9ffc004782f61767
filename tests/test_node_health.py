"""/health and /metrics of finality: a node that cannot poll says so."""

from prometheus_client import generate_latest
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.support import sync_node
from timecoin.consensus.snowball import SnowballParams
from timecoin.finality.snowball import SnowballFinality
from timecoin.ledger.keys import PrivateKey
from timecoin.testing.fakes import ManualFinality


class HealthTests(unittest.TestCase):
    def test_degraded_while_finality_cannot_poll(self):
        finality = ManualFinality()
        node = sync_node(self, Clock(), finality=finality)
        self.assertNotIn("finality", " ".join(node.queries.health()["problems"]))
        finality.poll_abort_reason = "insufficient-connected-stake: 1 of 4 active stake reachable"
        health = node.queries.health()
        self.assertEqual(health["status"], "degraded")
        self.assertIn("finality: cannot poll (insufficient-connected-stake: 1 of 4 active "
                      "stake reachable)", health["problems"])

    def test_no_peers_is_a_problem_only_off_devnet(self):
        node = sync_node(self, Clock(), finality=ManualFinality())
        self.assertEqual(node.network.name, "devnet")
        self.assertNotIn("network: 0 peers", node.queries.health()["problems"])
        node.network = _Named(node.network, "testnet")
        self.assertIn("network: 0 peers", node.queries.health()["problems"])


class _Named:
    """A network's parameters under another name."""

    def __init__(self, network, name):
        self._network = network
        self.name = name

    def __getattr__(self, attribute):
        return getattr(self._network, attribute)


class FinalityMetricsTests(unittest.TestCase):
    def test_stalled_aborted_early_and_votes_per_poll(self):
        keys = [PrivateKey.devnet(i).pubkey for i in range(4)]
        finality = SnowballFinality(Clock(), SnowballParams(k=4, beta=2, finality_confidence=2,
                                                            max_rounds=4),
                                    {pk: 1 for pk in keys}, keys[0], query_timeout_ms=500)
        node = sync_node(self, Clock(), finality=finality)
        finality.polls.stats.aborted = 3
        finality.polls.stats.early_terminated = 2
        finality.engine.stats.stalled = 1
        finality.polls.stats.votes_per_poll.update({4: 5, 3: 2})
        text = generate_latest(node.metrics.registry).decode()
        self.assertIn("timecoin_snowball_polls_aborted_total 3.0", text)
        self.assertIn("timecoin_snowball_polls_early_terminated_total 2.0", text)
        self.assertIn("timecoin_snowball_stalled_total 1.0", text)
        self.assertIn('timecoin_snowball_votes_per_poll_bucket{le="3"} 2.0', text)
        self.assertIn('timecoin_snowball_votes_per_poll_bucket{le="5"} 7.0', text)
        self.assertIn("timecoin_snowball_votes_per_poll_count 7.0", text)
        self.assertIn("timecoin_snowball_votes_per_poll_sum 26.0", text)
