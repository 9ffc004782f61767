"""/ready, /health's problems and the status page at ``GET /`` (rendered in
process, and loaded from a running node by headless Chromium when installed)."""

import json
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import treq
from twisted.internet import defer, reactor, utils
from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest

from tests.support import api_url, cookie, devnet_funding, start_node, sync_node, transfer
from timecoin.api.client import RpcClient
from timecoin.api.site import ReadyResource
from timecoin.api.status_page import StatusPageResource
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import COIN
from timecoin.testing.fakes import ManualFinality

KEY0, OP0, AMOUNT0 = devnet_funding(0)
DEST = PrivateKey.devnet(7)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DOC_SCREENSHOT = os.environ.get("TIMECOIN_STATUS_SCREENSHOT")


class Fields(HTMLParser):
    """The text of every element with a ``data-field`` attribute: ``{field: [texts]}``,
    and the attributes of those elements."""

    def __init__(self):
        super().__init__()
        self.fields, self.attributes, self._open = {}, {}, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        field = attrs.get("data-field")
        if field is not None:
            self.fields.setdefault(field, []).append("")
            self.attributes.setdefault(field, []).append(attrs)
        self._open.append(field)

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for field in self._open:
            if field is not None:
                self.fields[field][-1] += data


def fields_of(html):
    parser = Fields()
    parser.feed(html)
    return parser


def render_get(resource):
    request = DummyRequest([b""])
    body = resource.render_GET(request)
    return request.responseCode or 200, body


class ReadyAndHealthTests(unittest.TestCase):
    def test_ready_is_503_unless_ok(self):
        finality = ManualFinality()
        node = sync_node(self, Clock(), finality=finality)
        code, body = render_get(ReadyResource(node.queries))
        self.assertEqual((code, json.loads(body)), (200, node.queries.health()))
        finality.poll_abort_reason = "insufficient-connected-stake"
        code, body = render_get(ReadyResource(node.queries))
        self.assertEqual(code, 503)
        self.assertEqual(json.loads(body)["status"], "degraded")

    def test_stalled_conflict_sets_are_a_problem(self):
        finality = ManualFinality()
        node = sync_node(self, Clock(), finality=finality)
        tx = transfer(KEY0, [OP0], [(COIN, DEST.key_hash)], total=AMOUNT0)
        finality.started[tx.txid] = tx
        finality.stalled_reasons[tx.txid] = "stalled: undecided"
        self.assertIn("finality: 1 pending transactions in stalled conflict sets",
                      node.queries.health()["problems"])


class StatusPageRenderingTests(unittest.TestCase):
    def test_figures_match_the_read_side(self):
        node = sync_node(self, Clock(), finality=ManualFinality())
        node.metrics.finalized(12.5)
        node.metrics.finalized(30.0)
        code, body = render_get(StatusPageResource(node))
        self.assertEqual(code, 200)
        page = fields_of(body.decode())
        health = node.queries.health()
        self.assertEqual(page.fields["height"], [str(health["height"])])
        self.assertEqual(page.fields["status"], [health["status"]])
        self.assertEqual(page.fields["mempool_size"], [str(node.queries.mempool_info()["size"])])
        tiers = [str(mn["tier"]) for mn in node.queries.masternodes()]
        self.assertEqual(page.fields.get("masternode_tier", []), tiers)
        self.assertEqual(page.attributes["finality_chart"][0]["data-bars"], "2")
        self.assertEqual(body.count(b"<rect"), 2)
        self.assertNotIn(b"<script", body)
        self.assertNotRegex(body.decode(), r"(src|href)=\"https?:")


class BrowserTests(unittest.TestCase):
    """A running node's page, loaded by headless Chromium (127.0.0.1 only)."""

    timeout = 120

    def setUp(self):
        if CHROMIUM is None:
            raise unittest.SkipTest("chromium is not installed")

    def chromium(self, url, *extra):
        profile = tempfile.mkdtemp(prefix="timecoin-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", *extra, url]
        return utils.getProcessOutputAndValue(CHROMIUM, args, env={"HOME": profile},
                                              reactor=reactor)

    @defer.inlineCallbacks
    def test_page_shows_what_rpc_answers(self):
        node = yield start_node(self, reactor)
        url = api_url(node)
        self.assertTrue(url.startswith("http://127.0.0.1:"))
        rpc = RpcClient(url, cookie(node), reactor=reactor)
        self.addCleanup(rpc.close)
        for n in range(3):
            key, op, amount = devnet_funding(n)
            tx = transfer(key, [op], [(COIN, DEST.key_hash)], total=amount)
            txid = yield rpc.call("sendrawtransaction", tx.hex())
            yield rpc.call("waitfortransaction", txid, 10)
        height_before = yield rpc.call("getblockcount")
        out, err, code = yield self.chromium(url + "/", "--dump-dom")
        self.assertEqual(code, 0, err.decode(errors="replace")[-2000:])
        page = fields_of(out.decode())
        info = yield rpc.call("getinfo")
        mempool = yield rpc.call("getmempoolinfo")
        masternodes = yield rpc.call("getmasternodes")
        peers = yield rpc.call("getpeerinfo")
        # The node commits a block every 2 s: the page shows a height between
        # the ones RPC answered before and after it was loaded.
        self.assertIn(page.fields["height"],
                      [[str(h)] for h in range(height_before, info["height"] + 1)])
        self.assertEqual(page.fields["peers"], [str(info["peers"])])
        self.assertEqual(page.fields["masternodes_active"], [str(info["masternodes_active"])])
        self.assertEqual(page.fields["mempool_size"], [str(mempool["size"])])
        self.assertEqual(page.fields["mempool_bytes"], [str(mempool["bytes"])])
        self.assertEqual(page.fields.get("masternode_tier", []),
                         [str(mn["tier"]) for mn in masternodes])
        self.assertEqual(len(page.fields.get("peer_address", [])), len(peers))
        self.assertEqual(page.attributes["finality_chart"][0]["data-bars"], "3")
        shot = DOC_SCREENSHOT or os.path.join(tempfile.mkdtemp(prefix="timecoin-shot-"),
                                              "status-page.png")
        out, err, code = yield self.chromium(url + "/", f"--screenshot={shot}",
                                             "--window-size=900,1000", "--hide-scrollbars")
        self.assertEqual(code, 0, err.decode(errors="replace")[-2000:])
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


class MetricsCheckTests(unittest.TestCase):
    """A running node's /metrics against ``promtool`` and the Grafana dashboard."""

    @defer.inlineCallbacks
    def metrics_text(self):
        node = yield start_node(self, reactor)
        rpc = RpcClient(api_url(node), cookie(node), reactor=reactor)
        self.addCleanup(rpc.close)
        tx = transfer(KEY0, [OP0], [(COIN, DEST.key_hash)], total=AMOUNT0)
        txid = yield rpc.call("sendrawtransaction", tx.hex())
        yield rpc.call("waitfortransaction", txid, 10)
        response = yield treq.get(api_url(node) + "/metrics", persistent=False)
        self.families = {(f.name, f.type) for f in node.metrics.registry.collect()}
        return (yield response.text())

    @defer.inlineCallbacks
    def test_promtool_check_metrics(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            raise unittest.SkipTest("promtool is not installed")
        text = yield self.metrics_text()
        checked = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                                 capture_output=True, timeout=60)
        self.assertEqual((checked.returncode, checked.stdout + checked.stderr), (0, b""))

    @defer.inlineCallbacks
    def test_dashboard_names_exist(self):
        text = yield self.metrics_text()
        exposed = {line.split("{")[0].split()[0] for line in text.splitlines()
                   if line and not line.startswith("#")}
        # Labelled families with no sample yet (no rejection, no disconnect) are
        # left out of the text: the registry still names them.
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        for name, kind in self.families:
            exposed.update(name + suffix for suffix in suffixes.get(kind, ("",)))
        path = os.path.join(os.path.dirname(__file__), "..", "contrib",
                            "grafana-dashboard.json")
        with open(path) as f:
            dashboard = json.load(f)
        expressions = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]
        self.assertGreater(len(expressions), 8)
        names = {n for e in expressions for n in re.findall(r"\btimecoin_[a-z0-9_]+", e)}
        self.assertTrue(names)
        self.assertEqual(names - exposed, set())
