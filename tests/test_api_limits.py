"""The API's limits before any work, on a real node over 127.0.0.1: credentials
and body size on the headers, the connection cap, the open-file reserve."""

import json
import os
import resource

import treq
from twisted.internet import defer, reactor
from twisted.logger import LogLevel
from twisted.trial import unittest

from tests.api_support import LogCapture, basic_auth, connect_raw, post_rpc
from tests.support import api_url, make_datadir, start_node
from timecoin.api.guard import MAX_BODY, connection_cap, open_file_count
from timecoin.node.assembly import reserved_descriptors
from timecoin.node.config import ConfigError, preset, resolve
from timecoin.testing.waiting import wait_until

HUGE = 200 * 2**20


def post_head(length=None, auth=None, chunked=False, extra=b""):
    lines = [b"POST /rpc HTTP/1.1", b"Host: 127.0.0.1", b"Content-Type: application/json"]
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
    else:
        lines.append(b"Content-Length: %d" % length)
    if auth is not None:
        lines.append(b"Authorization: " + auth)
    return b"\r\n".join(lines) + b"\r\n" + extra + b"\r\n"


def chunk(data):
    return b"%x\r\n" % len(data) + data + b"\r\n"


class HeaderChecks(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.log = LogCapture(self)
        self.node = yield start_node(self, reactor)
        self.site = self.node.getServiceNamed("api").factory

    def tearDown(self):
        self.assertEqual(self.log.tracebacks(), [])

    def refused_count(self, reason):
        return self.node.metrics.registry.get_sample_value("timecoin_api_refused_total",
                                                           {"reason": reason})

    @defer.inlineCallbacks
    def exchange(self, *parts):
        """Send ``parts`` and fire with what came back once the server closed."""
        client = yield connect_raw(reactor, self.node)
        for part in parts:
            client.transport.write(part)
        received = yield client.closed
        return received

    @defer.inlineCallbacks
    def test_unauthenticated_body_is_refused_after_its_headers(self):
        # 200 MB announced, none of it sent: the answer comes from the headers alone.
        received = yield self.exchange(post_head(HUGE))
        self.assertTrue(received.startswith(b"HTTP/1.1 401 "), received)
        self.assertIn(b'WWW-Authenticate: Basic realm="timecoin"', received)
        self.assertIn(b"Connection: close", received)
        self.assertEqual(self.refused_count("unauthenticated"), 1)
        # With wrong credentials and an Expect header, or chunked: the same.
        # (The client sends no body: a socket closed with unread data is
        # reset, and the reset could overtake the answer.)
        received = yield self.exchange(
            post_head(HUGE, auth=b"Basic d3Jvbmc6d3Jvbmc=", extra=b"Expect: 100-continue\r\n"))
        self.assertTrue(received.startswith(b"HTTP/1.1 401 "), received)
        self.assertNotIn(b"100 Continue", received)
        received = yield self.exchange(post_head(chunked=True))
        self.assertTrue(received.startswith(b"HTTP/1.1 401 "), received)
        self.assertEqual(self.refused_count("unauthenticated"), 3)

    @defer.inlineCallbacks
    def test_declared_length_over_the_limit_is_refused_before_the_body(self):
        received = yield self.exchange(post_head(MAX_BODY + 1, auth=basic_auth(self.node)))
        self.assertTrue(received.startswith(b"HTTP/1.1 413 "), received)
        self.assertEqual(self.refused_count("body_too_large"), 1)

    @defer.inlineCallbacks
    def test_chunked_body_is_cut_when_it_passes_the_limit(self):
        self.site.max_body = 1000
        # Sent in one write, read in one go: the server reads all of it.
        received = yield self.exchange(post_head(chunked=True, auth=basic_auth(self.node))
                                       + chunk(b" " * 600) + chunk(b" " * 600))
        self.assertTrue(received.startswith(b"HTTP/1.1 413 "), received)
        self.assertIn(b"larger than 1000 bytes", received)
        self.assertEqual(self.refused_count("body_too_large"), 1)

    @defer.inlineCallbacks
    def test_authenticated_chunked_request_is_served(self):
        body = b'{"jsonrpc": "2.0", "id": 1, "method": "getblockcount"}'
        client = yield connect_raw(reactor, self.node)
        client.transport.write(post_head(chunked=True, auth=basic_auth(self.node),
                                         extra=b"Connection: close\r\n")
                               + chunk(body) + b"0\r\n\r\n")
        received = yield client.closed
        self.assertTrue(received.startswith(b"HTTP/1.1 200 "), received)
        self.assertIn(b'"result": 0', received)

    @defer.inlineCallbacks
    def test_bodiless_requests_still_need_credentials_for_rpc_only(self):
        status, answer = yield post_rpc(self.node, b"", auth=False)
        self.assertEqual(status, 401)
        for path in ("/health", "/metrics"):
            response = yield treq.get(api_url(self.node) + path, persistent=False)
            self.assertEqual(response.code, 200, path)
            yield response.content()
        response = yield treq.get(api_url(self.node) + "/metrics", persistent=False)
        text = yield response.text()
        self.assertIn('timecoin_api_refused_total{reason="connection_cap"} 0.0', text)
        self.assertIn(f"timecoin_api_connections_max {float(self.site.max_connections)}", text)


def wait_call(node, txid, seconds):
    """A raw request whose answer takes ``seconds`` (a ``waitfortransaction``
    of an unknown txid): the connection is busy until then."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "waitfortransaction",
                       "params": [txid, seconds]}).encode()
    return post_head(len(body), auth=basic_auth(node)) + body


class ConnectionCap(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.log = LogCapture(self)
        datadir = make_datadir(self)
        with open(os.path.join(datadir, "timecoin.toml"), "w") as f:
            f.write("[api]\nmax_connections = 3\n")
        self.node = yield start_node(self, reactor, datadir)
        self.site = self.node.getServiceNamed("api").factory
        self.assertEqual(self.site.max_connections, 3)

    def tearDown(self):
        self.assertEqual(self.log.tracebacks(), [])

    def sample(self, name, labels=None):
        return self.node.metrics.registry.get_sample_value(name, labels or {})

    def server_side(self, client):
        """The site's channel of ``client``'s connection."""
        port = client.transport.getHost().port
        return next(c for c in self.site._channels if c.transport.getPeer().port == port)

    @defer.inlineCallbacks
    def test_a_full_api_evicts_its_longest_idle_connection(self):
        idle = []
        for _ in range(3):
            idle.append((yield connect_raw(reactor, self.node)))
            yield wait_until(reactor, lambda n=len(idle): self.site.open_connections == n)
        # The first one sends a byte: now the second has been silent longest.
        idle[0].transport.write(b"G")
        first = self.server_side(idle[0])
        yield wait_until(reactor, lambda: list(self.site._channels)[-1] is first)
        newcomer = yield connect_raw(reactor, self.node)
        yield idle[1].closed  # the longest idle one was closed to admit it
        self.assertTrue(idle[0].connected and idle[2].connected and newcomer.connected)
        self.assertEqual(self.site.open_connections, 3)
        # Served, and kept open (keep-alive): a response done counts as activity.
        newcomer.transport.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        yield wait_until(reactor, lambda: newcomer.received.endswith(b"}"))
        self.assertTrue(newcomer.received.startswith(b"HTTP/1.1 200 "), newcomer.received)
        self.assertEqual(self.sample("timecoin_api_connections_evicted_total"), 1)
        # The next one evicts idle[2], silent longest now.
        status, answer = yield post_rpc(self.node, {"jsonrpc": "2.0", "id": 1,
                                                    "method": "getblockcount"})
        self.assertEqual((status, answer["result"]), (200, 0))
        yield idle[2].closed
        self.assertTrue(idle[0].connected and newcomer.connected)
        self.assertEqual(self.sample("timecoin_api_connections_evicted_total"), 2)
        self.assertEqual(self.sample("timecoin_api_refused_total",
                                     {"reason": "connection_cap"}), 0)
        for c in (idle[0], newcomer):
            c.transport.loseConnection()
        yield wait_until(reactor, lambda: self.site.open_connections == 0)

    @defer.inlineCallbacks
    def test_when_every_connection_is_busy_a_new_one_is_refused(self):
        txid = "00" * 32
        busy = []
        for _ in range(3):
            client = yield connect_raw(reactor, self.node)
            client.transport.write(wait_call(self.node, txid, 30))
            busy.append(client)
        yield wait_until(reactor, lambda: self.site.open_connections == 3
                         and all(c.busy for c in self.site._channels))
        extra = yield connect_raw(reactor, self.node)
        received = yield extra.closed
        self.assertEqual(received, b"")
        self.assertEqual(self.sample("timecoin_api_refused_total",
                                     {"reason": "connection_cap"}), 1)
        self.assertEqual(self.sample("timecoin_api_connections_evicted_total"), 0)
        self.assertTrue(all(c.connected for c in busy))
        busy.pop().transport.loseConnection()
        yield wait_until(reactor, lambda: self.site.open_connections == 2)
        status, answer = yield post_rpc(self.node, {"jsonrpc": "2.0", "id": 1,
                                                    "method": "getblockcount"})
        self.assertEqual((status, answer["result"]), (200, 0))
        for c in busy:
            c.transport.loseConnection()
        yield wait_until(reactor, lambda: self.site.open_connections == 0)


class OpenFileLimit(unittest.TestCase):
    @defer.inlineCallbacks
    def test_a_node_under_a_low_open_file_limit_lowers_its_cap(self):
        log = LogCapture(self)
        datadir = make_datadir(self)
        with open(os.path.join(datadir, "timecoin.toml"), "w") as f:
            f.write("[validation]\nsignature_workers = 0\n")  # no processes to spawn
        reserved = reserved_descriptors(resolve("devnet", datadir=datadir))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        low = open_file_count() + reserved + 50
        if soft != resource.RLIM_INFINITY and soft <= low:
            raise unittest.SkipTest(f"the open-file limit is already {soft}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        node = yield start_node(self, reactor, datadir)
        cap = node.getServiceNamed("api").factory.max_connections
        self.assertLessEqual(cap, 50)
        self.assertGreaterEqual(cap, 1)
        self.assertTrue(any("open-file limit" in m for m in log.messages(LogLevel.warn)))
        status, answer = yield post_rpc(node, {"jsonrpc": "2.0", "id": 1,
                                               "method": "getblockcount"})
        self.assertEqual(answer["result"], 0)

    def test_the_cap_leaves_descriptors_for_storage(self):
        log = LogCapture(self)
        self.assertEqual(connection_cap(100, 126, limit=1024, in_use=20), 100)
        self.assertEqual(log.messages(LogLevel.warn), [])
        self.assertEqual(connection_cap(100, 126, limit=256, in_use=80), 50)
        self.assertEqual(len(log.messages(LogLevel.warn)), 1)
        self.assertIn("open-file limit", log.messages(LogLevel.warn)[0])
        self.assertEqual(connection_cap(100, 126, limit=64, in_use=10), 1)
        self.assertGreaterEqual(connection_cap(100, 0), 1)


class ConfigKey(unittest.TestCase):
    def test_max_connections_is_a_checked_key_with_a_default(self):
        self.assertEqual(preset("devnet")["api"]["max_connections"], 100)
        for bad in (0, -1, 1.5, "many", True):
            with self.assertRaises(ConfigError) as caught:
                resolve("devnet", overrides={("api", "max_connections"): bad})
            self.assertIn("api.max_connections", str(caught.exception))
