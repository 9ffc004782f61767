"""The inv flood benchmark: its bounds, and real runs against a daemon on 127.0.0.1
(the flooding peer a process of its own)."""

import io
import sys

from twisted.internet import defer, reactor
from twisted.trial import unittest

from timecoin.bench import floodpeer, invflood


class InvFloodTests(unittest.TestCase):
    timeout = 120

    def test_arguments_are_bounded(self):
        self.patch(sys, "stderr", io.StringIO())  # argparse's error lines
        for argv in (["--txs", "0"], ["--txs", "10001"], ["--txids-per-inv", "1001"],
                     ["--rate", "1001"], ["--timeout", "0"], ["--rounds", "0"],
                     ["--txs", "3", "--rounds", "4"]):
            with self.assertRaises(SystemExit, msg=argv):
                invflood.parse_args(argv)
        args = invflood.parse_args([])
        self.assertEqual((args.txs, args.txids_per_inv, args.rate, args.rounds),
                         (200, 10, None, 4))
        self.assertEqual(invflood.round_sizes(10, 4), [3, 3, 2, 2])

    @defer.inlineCallbacks
    def test_a_short_run_measures_both_phases_and_keeps_the_flooder_connected(self):
        out = io.StringIO()
        args = invflood.parse_args(["--txs", "6", "--rate", "200", "--rounds", "2"])
        result = yield invflood.run(reactor, args, out)
        text = out.getvalue()
        self.assertRegex(text, r"idle\s+finality p50\s+[\d.]+ ms")
        self.assertRegex(text, r"inv flood\s+finality p50\s+[\d.]+ ms")
        self.assertRegex(text, r"node CPU \d+% of a core")
        self.assertIn("flooder still connected", text)
        self.assertRegex(text, r"ratio\s+[\d.]+")
        self.assertTrue(result.still_connected)
        self.assertGreater(result.inv_rate, 0)
        self.assertEqual(result.dropped_rate, 0)  # 2,000 txids/s: within the budget
        self.assertEqual(result.hold_rate, 0)

    @defer.inlineCallbacks
    def test_full_invs_at_the_rate_limit_leave_finality_within_twice_idle(self):
        # The case of the hardening issue: inv messages of 1,000 random txids
        # from one peer, as many a second as the node's rate limit accepts.
        out = io.StringIO()
        args = invflood.parse_args(["--txs", "80", "--txids-per-inv", "1000"])
        result = yield invflood.run(reactor, args, out)
        self.assertTrue(result.still_connected, out.getvalue())
        # The node dropped what the flooder's txid budget did not allow, and
        # stopped reading it until the budget refilled (TCP pushed the rest of
        # the flood back to the flooder)...
        self.assertGreater(result.dropped_rate, 0, out.getvalue())
        self.assertGreater(result.hold_rate, 0, out.getvalue())
        self.assertGreater(result.inv_rate, 0, out.getvalue())
        # ...so honest finality stayed within twice its idle median.
        self.assertLessEqual(result.ratio, 2, out.getvalue())

    def test_the_flooding_peer_reports_what_it_sent(self):
        peer = floodpeer.FloodPeerProcess()
        peer.output = b"flooding\nsent 12 12000 1 1 2.500\n"
        self.assertEqual(peer.report(), (12, 12000, 1, True, 2.5))
        peer.output = b"flooding\n"
        self.assertRaises(RuntimeError, peer.report)

    def test_the_honest_chain_spends_its_own_change(self):
        chain = invflood.HonestChain()
        first, second = chain.next(), chain.next()
        self.assertEqual(second.inputs[0].prevout, first.outpoints()[1])
        self.assertEqual(first.outputs[1].amount - 1000 - invflood.FEE,
                         second.outputs[1].amount)
