"""``timecoin bench``: planning, scheduling, figures, report, and one small run."""

import json
import os

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.support import api_url, cookie, start_devnet
from timecoin.api.client import RpcConnectionError
from timecoin.bench import chart as bench_chart
from timecoin.bench import command as bench
from timecoin.bench import plan as bench_plan
from timecoin.bench import report as bench_report
from timecoin.bench import run as bench_run
from timecoin.bench.plan import (
    FANOUT_FEE,
    LOAD_AMOUNT,
    LOAD_FEE,
    Coin,
    build_fanouts,
    due,
    fanout_levels,
    percentile,
    sign_loads,
    split,
    summarize,
    total_txs,
)
from timecoin.cli import UsageError, parse_args
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import COIN, DEVNET
from timecoin.ledger.tx import OutPoint


def genesis_coin(index):
    gtx = make_genesis(DEVNET).txs[0]
    return Coin(PrivateKey.devnet(index), OutPoint(gtx.txid, index), gtx.outputs[index].amount)


class PlanTests(unittest.TestCase):
    def test_fanout_levels(self):
        self.assertEqual(fanout_levels(0, 90), [])
        self.assertEqual(fanout_levels(50, 90), [1])
        self.assertEqual(fanout_levels(400, 90), [1])
        self.assertEqual(fanout_levels(401, 90), [2])
        self.assertEqual(fanout_levels(36_000, 90), [90])
        self.assertEqual(fanout_levels(36_001, 90), [1, 91])
        self.assertEqual(fanout_levels(200_000, 90), [2, 500])
        self.assertEqual(fanout_levels(5, 1, per_tx=2), [1, 2, 3])
        self.assertRaises(ValueError, fanout_levels, 5, 0)

    def test_split(self):
        self.assertEqual(split(10, 3), [4, 3, 3])
        self.assertEqual(split(2, 2), [1, 1])

    def test_build_fanouts_chains_levels(self):
        coins = [genesis_coin(10)]
        levels, outputs = build_fanouts(coins, 5, DEVNET.network_id, per_tx=2)
        self.assertEqual([len(level) for level in levels], [1, 2, 3])
        self.assertEqual(len(outputs), 5)
        spendable = {coins[0].outpoint: coins[0].amount}
        for level in levels:
            for tx in level:
                (txin,) = tx.inputs
                amount = spendable.pop(txin.prevout)
                self.assertEqual(amount - tx.output_total, FANOUT_FEE)
                for vout, out in enumerate(tx.outputs):
                    spendable[OutPoint(tx.txid, vout)] = out.amount
        for coin in outputs:
            self.assertEqual(spendable[coin.outpoint], LOAD_AMOUNT)
            self.assertEqual(coin.amount, LOAD_AMOUNT)

    def test_fanout_change_and_shortfall(self):
        levels, outputs = build_fanouts([genesis_coin(11)], 3, DEVNET.network_id)
        (tx,) = levels[0]
        self.assertEqual(len(tx.outputs), 4)  # three loads and the change
        self.assertEqual(tx.outputs[3].amount, 100_000 * COIN - 3 * LOAD_AMOUNT - FANOUT_FEE)
        poor = Coin(PrivateKey.devnet(12), OutPoint(bytes(32), 0), LOAD_AMOUNT)
        self.assertRaises(ValueError, build_fanouts, [poor], 3, DEVNET.network_id)

    def test_sign_loads(self):
        _, outputs = build_fanouts([genesis_coin(12)], 2, DEVNET.network_id)
        loads = sign_loads(outputs, DEVNET.network_id)
        self.assertEqual(len(loads), 2)
        for coin, tx in zip(outputs, loads, strict=True):
            self.assertEqual([i.prevout for i in tx.inputs], [coin.outpoint])
            self.assertEqual([(o.amount, o.key_hash) for o in tx.outputs],
                             [(LOAD_AMOUNT - LOAD_FEE, bench_plan.sink_key().key_hash)])

    def test_rate_schedule(self):
        self.assertEqual(total_txs(500, 20), 10_000)
        self.assertEqual(total_txs(10_000, 100), bench_plan.MAX_TXS)
        self.assertEqual(total_txs(500, 20, cap=100), 100)
        self.assertEqual(due(500, -1, 100), 0)
        self.assertEqual(due(500, 0.01, 100), 5)
        self.assertEqual(due(500, 0.1, 100), 50)
        self.assertEqual(due(500, 1.0, 100), 100)
        self.assertEqual(due(3, 1 / 3, 100), 1)
        steps = [due(250, t / 100, 1000) for t in range(101)]
        self.assertEqual(steps[-1], 250)
        self.assertTrue(all(b - a in (2, 3) for a, b in zip(steps, steps[1:], strict=False)))

    def test_percentiles(self):
        values = list(range(100, 0, -1))
        self.assertEqual(percentile(values, 50), 50)
        self.assertEqual(percentile(values, 99), 99)
        self.assertEqual(percentile(values, 100), 100)
        self.assertEqual(percentile(values, 0), 1)
        self.assertEqual(percentile([7.5], 95), 7.5)
        self.assertIsNone(percentile([], 50))
        self.assertEqual(summarize([]), {"count": 0, "mean": None, "p50": None, "p95": None,
                                         "p99": None, "max": None})
        self.assertEqual(summarize([1, 2, 3, 4]), {"count": 4, "mean": 2.5, "p50": 2,
                                                   "p95": 4, "p99": 4, "max": 4})

    def test_parse_metrics(self):
        text = ("# HELP timecoin_process_cpu_seconds_total CPU\n"
                "timecoin_process_cpu_seconds_total 12.5\n"
                "timecoin_tx_received_total{result=\"accepted\"} 3.0\n"
                "timecoin_process_peak_rss_bytes 1.048576e+08\n")
        self.assertEqual(bench_plan.parse_metrics(text, (bench_run.CPU, bench_run.RSS)),
                         {"timecoin_process_cpu_seconds_total": 12.5,
                          "timecoin_process_peak_rss_bytes": 104857600.0})

    def test_block_handler_cpu_sums_the_block_kinds(self):
        text = ('timecoin_p2p_handler_cpu_seconds_total{kind="block_prevote"} 0.25\n'
                'timecoin_p2p_handler_cpu_seconds_total{kind="inv"} 7.0\n'
                'timecoin_p2p_handler_cpu_seconds_total{kind="blocks"} 0.5\n')
        self.assertEqual(bench_plan.block_handler_cpu(text), 0.75)
        self.assertIsNone(bench_plan.block_handler_cpu("timecoin_block_height 3\n"))


class FakeRun:
    """What :func:`build_report` reads of a finished run."""

    urls = ["http://127.0.0.1:1", "http://127.0.0.1:3"]

    def __init__(self):
        self.sent_at = [0.5, 1.0, 1.5, 2.0, None]
        self.final_at = [0.6, 1.2, 1.9, None, None]
        self.node_ms = [80.0, 150.0, 300.0, None, None]
        self.status = ["finalized", "finalized", "finalized", "rejected", "error"]
        self.reasons = {"refused: double-spend": 1}
        self.errors = {"not final when the run ended": 1}
        node = {"timecoin_process_cpu_seconds_total": 1.0,
                "timecoin_process_peak_rss_bytes": 50 * 2**20,
                "timecoin_block_height": 10.0, "block_handler_cpu_s": 0.2}
        later = dict(node, timecoin_process_cpu_seconds_total=1.5, timecoin_block_height=14.0,
                     block_handler_cpu_s=0.25)
        self.samples = {"window_start": {"at": 1.0, "client_cpu": 2.0, "nodes": [node, {}]},
                        "window_end": {"at": 3.0, "client_cpu": 2.5, "nodes": [later, {}]},
                        "end": {"at": 3.5, "client_cpu": 2.6, "nodes": [later, {}]}}


class ReportTests(unittest.TestCase):
    def report(self):
        return bench_report.build_report(FakeRun(), {"nodes": 2, "rate": 2.0, "duration": 2.0,
                                                     "warmup": 1.0, "senders": 1})

    def test_figures(self):
        report = self.report()
        self.assertEqual(report["window_s"], 2.0)
        self.assertEqual(report["transactions"], {
            "planned": 5, "sent": 4, "sent_in_window": 3, "finalized": 3, "rejected": 1,
            "not_finalized": 1})
        self.assertEqual(report["throughput"], {
            "offered_tx_s": 1.5, "finalized_in_window_tx_s": 1.0,
            "finalized_sustained_tx_s": round(3 / 1.4, 1)})
        self.assertEqual(report["finality_ms"]["client_observed"]["count"], 2)
        self.assertEqual(report["finality_ms"]["client_observed"]["p50"], 200.0)
        self.assertEqual(report["finality_ms"]["node_reported"]["max"], 300.0)
        self.assertEqual(report["nodes"][0], {"node": 0, "url": FakeRun.urls[0], "cpu_s": 0.5,
                                              "cpu_percent": 25.0, "peak_rss_mb": 50.0,
                                              "blocks": 4, "block_cpu_s": 0.05,
                                              "block_cpu_ms_per_block": 12.5,
                                              "block_cpu_percent_of_node": 10.0})
        self.assertIsNone(report["nodes"][1]["cpu_s"])
        self.assertIsNone(report["nodes"][1]["block_cpu_ms_per_block"])
        self.assertEqual(report["client_cpu_s"], 0.5)

    def test_json_shape(self):
        report = self.report()
        report.pop("samples")
        decoded = json.loads(json.dumps(report))
        self.assertEqual(sorted(decoded), ["client_cpu_s", "config", "errors", "finality_ms",
                                           "nodes", "rejections", "throughput",
                                           "transactions", "window_s"])
        self.assertEqual(sorted(decoded["finality_ms"]["node_reported"]),
                         ["count", "max", "mean", "p50", "p95", "p99"])

    def test_text(self):
        text = "\n".join(bench_report.format_report(self.report()))
        for part in ("client-observed", "node-reported", "1.0 tx/s during the window",
                     "refused: double-spend", "not final when the run ended", "peak_rss_mb",
                     "block_cpu_ms_per_block"):
            self.assertIn(part, text)

    def test_png(self):
        path = self.mktemp() + ".png"
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.assertFalse(bench_chart.write_png(self.report(), path))
        else:
            self.assertTrue(bench_chart.write_png(self.report(), path))
            with open(path, "rb") as f:
                self.assertEqual(f.read(4), b"\x89PNG")

    def test_cdf_side_by_side_with_percentiles_marked(self):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise unittest.SkipTest("matplotlib (the plot extra) is not installed") from None
        report = self.report()
        fig = bench_chart.draw_cdf(report)
        axes = fig.get_axes()
        self.assertEqual(len(axes), 2)
        for ax, (key, figures, title) in zip(axes, bench_chart.PANELS, strict=True):
            self.assertIn(title, ax.get_title())
            summary = report["finality_ms"][figures]
            labels = [t.get_text() for t in ax.texts]
            self.assertEqual(labels, [f"{name} {summary[name]:g} ms"
                                      for name, _ in bench_chart.PERCENTILES])
            marks = sorted(line.get_xdata()[0] for line in ax.get_lines()[1:])
            self.assertEqual(marks, [summary[n] for n, _ in bench_chart.PERCENTILES])
            curve = ax.get_lines()[0]
            self.assertEqual(sorted(curve.get_xdata()), sorted(report["samples"][key]))
            self.assertEqual(curve.get_ydata()[-1], 1.0)

    def test_cdf_points(self):
        self.assertEqual(bench_chart.cdf_points([3, 1, 2, 2]), ([1, 2, 2, 3],
                                                                [0.25, 0.5, 0.75, 1.0]))


class ArgumentTests(unittest.TestCase):
    def args(self, *argv):
        return parse_args(["bench", *argv])

    def test_repeated_rpc(self):
        args = self.args("--rpc", "http://127.0.0.1:1", "--rpc", "http://127.0.0.1:3",
                         "--datadir", "/a", "--datadir", "/b", "--rate", "5")
        self.assertEqual(args.rpc_urls, ["http://127.0.0.1:1", "http://127.0.0.1:3"])
        self.assertEqual(args.datadirs, ["/a", "/b"])
        self.assertEqual(args.rate, 5.0)

    def test_devnet_dir(self):
        root = self.mktemp()
        for i in (0, 1):
            os.makedirs(os.path.join(root, f"node{i}"))
            with open(os.path.join(root, f"node{i}", ".cookie"), "w") as f:
                f.write(f"__cookie__:{i}{i}")
        os.makedirs(os.path.join(root, "keys"))
        targets = bench.resolve_targets(self.args("--devnet-dir", root, "--base-port", "25000"))
        self.assertEqual(targets, [("http://127.0.0.1:25001", ("__cookie__", "00")),
                                   ("http://127.0.0.1:25003", ("__cookie__", "11"))])

    def test_bad_usage(self):
        check = bench._check_args
        self.assertRaises(UsageError, check, self.args("--network", "testnet", "--nodes", "2"))
        self.assertRaises(UsageError, check, self.args("--nodes", "2", "--rate", "0"))
        self.assertRaises(UsageError, check, self.args("--nodes", "2", "--rpc", "http://x"))
        self.assertRaises(UsageError, check, self.args("--nodes", "11"))
        args = self.args("--rpc", "http://10.0.0.1:24201")
        self.assertRaises(UsageError, bench.resolve_targets, args)
        args = self.args("--rpc", "http://127.0.0.1:1", "--rpc", "http://127.0.0.1:3",
                         "--datadir", "/a", "--datadir", "/b", "--datadir", "/c")
        self.assertRaises(UsageError, bench.resolve_targets, args)

    def test_free_base_port(self):
        low, high = bench._ephemeral_range()
        for _ in range(20):
            base = bench.free_base_port(4)
            self.assertEqual(base % 2, 0)
            self.assertTrue(1024 <= base and base + 7 <= 65535, base)
            # outside the range the kernel hands out for outgoing connections
            self.assertTrue(base + 7 < low or base > high, (base, low, high))


class EndToEndTests(unittest.TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_small_run(self):
        from twisted.internet import reactor

        nodes = yield start_devnet(self, reactor, 3)
        targets = [(api_url(n), cookie(n)) for n in nodes]
        report = yield bench.run_bench(reactor, targets, rate=50, duration=1.0, senders=2,
                                       drain=20.0)
        t = report["transactions"]
        self.assertEqual(t["planned"], 50)
        self.assertEqual(t["sent"], 50)
        self.assertEqual(t["finalized"], 50)
        self.assertEqual((t["rejected"], t["not_finalized"]), (0, 0))
        self.assertEqual(report["errors"], {})
        client, node = report["finality_ms"]["client_observed"], \
            report["finality_ms"]["node_reported"]
        self.assertEqual(client["count"], t["sent_in_window"])
        self.assertEqual(node["count"], t["sent_in_window"])
        self.assertLessEqual(client["p50"], client["p99"])
        self.assertEqual(len(report["nodes"]), 3)
        self.assertTrue(all(n["cpu_s"] is not None for n in report["nodes"]))
        self.assertEqual(report["config"]["fanouts"], 1)


class UnreachableNodeTests(unittest.TestCase):
    """A node the bench cannot reach is one error naming it, not a traceback."""

    def test_wait_connected_reports_the_node(self):
        class Unreachable:
            def call(self, method):
                return defer.fail(RpcConnectionError("cannot reach the node at http://x/rpc"))

        class Answering:
            def call(self, method):
                return defer.succeed({"peers": 1})

        d = bench.wait_connected(Clock(), [Answering(), Unreachable()])
        failure = self.failureResultOf(d, RpcConnectionError)
        self.assertIn("http://x/rpc", str(failure.value))
