"""tools/dashboard_query.py (the PromQL subset the dashboard uses) and
tools/render_dashboard.py (the dashboard's panels drawn into a PNG)."""

import json
import math
import os
import shutil
import sys
import tempfile

from prometheus_client import generate_latest
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.support import devnet_funding, sync_node, transfer
from timecoin.testing.fakes import ManualFinality

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import dashboard_query as q  # noqa: E402
import render_dashboard  # noqa: E402

DASHBOARD = os.path.join(ROOT, "contrib", "grafana-dashboard.json")

FIRST = """\
# TYPE timecoin_tx_finalized_total counter
timecoin_tx_finalized_total 0
# TYPE timecoin_cache_lookups_total counter
timecoin_cache_lookups_total{result="hit"} 0
timecoin_cache_lookups_total{result="miss"} 0
# TYPE timecoin_op_seconds histogram
timecoin_op_seconds_bucket{op="a",le="0.1"} 0
timecoin_op_seconds_bucket{op="a",le="1.0"} 0
timecoin_op_seconds_bucket{op="a",le="+Inf"} 0
timecoin_op_seconds_sum{op="a"} 0
timecoin_op_seconds_count{op="a"} 0
"""

SECOND = """\
# TYPE timecoin_tx_finalized_total counter
timecoin_tx_finalized_total 50
# TYPE timecoin_cache_lookups_total counter
timecoin_cache_lookups_total{result="hit"} 30
timecoin_cache_lookups_total{result="miss"} 10
# TYPE timecoin_op_seconds histogram
timecoin_op_seconds_bucket{op="a",le="0.1"} 50
timecoin_op_seconds_bucket{op="a",le="1.0"} 90
timecoin_op_seconds_bucket{op="a",le="+Inf"} 100
timecoin_op_seconds_sum{op="a"} 40
timecoin_op_seconds_count{op="a"} 100
"""


def series():
    kept = q.Series()
    for instance in ("node0", "node1"):
        kept.add_scrape(0.0, instance, FIRST)
        kept.add_scrape(10.0, instance, SECOND)
    return kept


def at(expression, t=10.0, kept=None):
    return q.evaluate(q.parse(expression), kept or series(), t)


class QueryTests(unittest.TestCase):
    def test_rate_per_instance_and_summed(self):
        rates = at("rate(timecoin_tx_finalized_total[1m])")
        self.assertEqual(sorted(rates.values()), [5.0, 5.0])
        self.assertEqual(at("sum(rate(timecoin_tx_finalized_total[1m]))"), {(): 10.0})
        self.assertEqual(at("60 * sum(rate(timecoin_tx_finalized_total[1m]))"), {(): 600.0})
        # One sample in the range: no rate.
        self.assertEqual(at("rate(timecoin_tx_finalized_total[5s])"), {})

    def test_counter_reset(self):
        kept = series()
        kept.add_scrape(20.0, "node0", FIRST.replace("total 0", "total 4"))
        rates = at("rate(timecoin_tx_finalized_total[1m])", 20.0, kept)
        self.assertEqual(rates[(("instance", "node0"),)], (50 + 4) / 20.0)

    def test_matchers_sum_by_and_ratio(self):
        ratio = at('sum(rate(timecoin_cache_lookups_total{result="hit"}[5m])) / '
                   "sum(rate(timecoin_cache_lookups_total[5m]))")
        self.assertEqual(ratio, {(): 0.75})
        by = at("sum by (result) (rate(timecoin_cache_lookups_total[5m]))")
        self.assertEqual(by, {(("result", "hit"),): 6.0, (("result", "miss"),): 2.0})

    def test_histogram_quantile_interpolates_like_prometheus(self):
        expression = ("histogram_quantile({q}, sum by (le, op) "
                      "(rate(timecoin_op_seconds_bucket[5m])))")
        median = at(expression.format(q=0.5))
        self.assertAlmostEqual(median[(("op", "a"),)], 0.1)
        p70 = at(expression.format(q=0.7))[(("op", "a"),)]
        self.assertAlmostEqual(p70, 0.1 + 0.9 * (140 - 100) / (180 - 100))
        # In the +Inf bucket: the highest finite bound.
        self.assertEqual(at(expression.format(q=0.99))[(("op", "a"),)], 1.0)
        self.assertEqual(at(expression.format(q=0.5), t=0.0), {})

    def test_outside_the_subset_is_an_error(self):
        for text in ("rate(x[5])", "x{a!=\"b\"}", "avg(x)", "x +", "sum by (a x)"):
            self.assertRaises(q.QueryError, q.parse, text)

    def test_legend(self):
        self.assertEqual(q.legend("{{kind}} {{ direction }}",
                                  (("direction", "in"), ("kind", "tx"))), "tx in")


class DashboardTests(unittest.TestCase):
    def setUp(self):
        with open(DASHBOARD) as f:
            self.dashboard = json.load(f)

    def node_scrapes(self):
        """Two scrapes of a node's registry, a finalization between them."""
        finality = ManualFinality()
        node = sync_node(self, Clock(), finality=finality)
        node.startService()
        self.addCleanup(node.stopService)
        kept = q.Series()
        kept.add_scrape(0.0, "node0", generate_latest(node.metrics.registry).decode())
        key, op, amount = devnet_funding(0)
        tx = transfer(key, [op], [(amount - 5000, key.key_hash)], fee=5000)
        node.submit(tx)
        finality.decide(tx.txid, True)
        kept.add_scrape(10.0, "node0", generate_latest(node.metrics.registry).decode())
        return kept

    def test_every_panel_evaluates_on_a_nodes_metrics(self):
        kept = self.node_scrapes()
        drawn = {}
        for panel in self.dashboard["panels"]:
            lines = render_dashboard.panel_lines(panel, kept, [0.0, 10.0])
            drawn[panel["title"]] = lines
            for _, xs, ys in lines:
                self.assertEqual(len(xs), len(ys))
                self.assertTrue(all(not math.isnan(y) for y in ys))
        [(_, _, finalized)] = drawn["Transactions finalized per second"]
        self.assertEqual(finalized, [0.1])
        commits = [ys for name, _, ys in drawn["Storage operations per second, by operation"]
                   if name == "journal_commit"]
        self.assertEqual(commits, [[0.1]])
        [(_, _, hit_rate)] = [line for line in drawn["Cache hit rate"] if line[0] == "UTXO cache"]
        self.assertEqual(hit_rate, [0.0])  # the one lookup was a miss

    def test_render_writes_a_png(self):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise unittest.SkipTest("matplotlib is not installed (the plot extra)") from None
        directory = tempfile.mkdtemp(prefix="timecoin-dash-")
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "dashboard.png")
        kept = self.node_scrapes()
        small = dict(self.dashboard, panels=self.dashboard["panels"][:4])
        render_dashboard.render(small, kept, [0.0, 10.0], path)
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_only_loopback_is_scraped(self):
        self.assertRaises(SystemExit, render_dashboard.scrape, ["http://10.0.0.1:1"], 0, 1)
