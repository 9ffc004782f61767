"""The inv flood benchmark: its bounds, and a short real run against a daemon on 127.0.0.1."""

import io
import sys

from twisted.internet import defer, reactor
from twisted.trial import unittest

from timecoin.bench import invflood


class InvFloodTests(unittest.TestCase):
    timeout = 120

    def test_arguments_are_bounded(self):
        self.patch(sys, "stderr", io.StringIO())  # argparse's error lines
        for argv in (["--txs", "0"], ["--txs", "10001"], ["--txids-per-inv", "1001"],
                     ["--rate", "1001"], ["--timeout", "0"]):
            with self.assertRaises(SystemExit, msg=argv):
                invflood.parse_args(argv)
        args = invflood.parse_args([])
        self.assertEqual((args.txs, args.txids_per_inv, args.rate), (200, 10, None))

    @defer.inlineCallbacks
    def test_a_short_run_measures_both_phases_and_keeps_the_flooder_connected(self):
        out = io.StringIO()
        args = invflood.parse_args(["--txs", "5", "--rate", "200"])
        yield invflood.run(reactor, args, out)
        text = out.getvalue()
        self.assertRegex(text, r"idle\s+finality p50\s+[\d.]+ ms")
        self.assertRegex(text, r"inv flood\s+finality p50\s+[\d.]+ ms")
        self.assertIn("flooder still connected", text)
        self.assertRegex(text, r"ratio\s+[\d.]+")

    def test_the_honest_chain_spends_its_own_change(self):
        chain = invflood.HonestChain()
        first, second = chain.next(), chain.next()
        self.assertEqual(second.inputs[0].prevout, first.outpoints()[1])
        self.assertEqual(first.outputs[1].amount - 1000 - invflood.FEE,
                         second.outputs[1].amount)
