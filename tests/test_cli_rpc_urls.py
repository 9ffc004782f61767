"""``--rpc``: malformed URLs are one line (exit 2), ``unix:`` sockets, ``https://``
against the plain API failing fast, and ``--version``."""

import contextlib
import io
import json
import os
import socket
import tempfile

from twisted.internet import defer, reactor
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from tests.support import api_url, make_datadir, start_node
from timecoin import __version__, cli
from timecoin.api.address import ApiUrlError, parse_api_url
from timecoin.api.client import RpcClient, RpcConnectionError, read_cookie
from timecoin.tap import Options


def run(argv, reactor_=None):
    out, err = io.StringIO(), io.StringIO()
    d = cli.run_command(reactor_ or MemoryReactorClock(), list(argv), out, err)
    return d.addCallback(lambda code: (code, out.getvalue(), err.getvalue()))


class MalformedUrlTests(unittest.TestCase):
    """Each malformed ``--rpc`` is one line on stderr and exit status 2."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="timecoin-url-")
        self.addCleanup(os.rmdir, self.dir)
        self.plain = os.path.join(self.dir, "file")
        open(self.plain, "w").close()
        self.addCleanup(os.unlink, self.plain)

    @defer.inlineCallbacks
    def test_each_is_one_line(self):
        cases = {
            "127.0.0.1:24201": "has no scheme: write http://127.0.0.1:24201",
            f"unix:{self.plain}": f"{self.plain} is not a socket",
            f"unix:{self.dir}/missing": f"no API socket at {self.dir}/missing",
            "unix:": "needs the socket's path",
            "ftp://127.0.0.1:1": "the scheme must be http, https or unix",
            "http://127.0.0.1:99999": "port that is not a number",
            "http://:80": "has no host",
            "http://127.0.0.1:1/elsewhere": "give the node's base URL",
            "": "empty API URL",
        }
        for url, expected in cases.items():
            code, out, err = yield run(["--rpc", url, "info"])
            self.assertEqual(code, 2, url)
            self.assertEqual(out, "", url)
            self.assertEqual(err.count("\n"), 1, (url, err))
            self.assertIn(expected, err, url)
            self.assertTrue(err.startswith("timecoin: error: --rpc: "), err)

    def test_accepted_forms(self):
        self.assertEqual(parse_api_url("http://127.0.0.1:24201").url,
                         "http://127.0.0.1:24201/rpc")
        self.assertEqual(parse_api_url("https://node.example:24201/rpc/").url,
                         "https://node.example:24201/rpc")
        self.assertRaises(ApiUrlError, RpcClient, "127.0.0.1:1", reactor=MemoryReactorClock())


class UnixSocketTests(unittest.TestCase):
    """The CLI reaches an API served on a UNIX socket."""

    @defer.inlineCallbacks
    def test_info_over_a_unix_socket(self):
        datadir = make_datadir(self)
        path = os.path.join(datadir, "api.sock")
        node = yield start_node(self, reactor, datadir=datadir, api=f"unix:{path}")
        code, out, err = yield run(["--datadir", datadir, "--rpc", f"unix:{path}", "--json",
                                    "info"], reactor)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(json.loads(out)["height"], node.queries.height())
        client = RpcClient(f"unix:{path}", read_cookie(datadir), reactor=reactor, timeout=10)
        self.addCleanup(client.close)
        count = yield client.call("getblockcount")
        self.assertEqual(count, node.queries.height())

    @defer.inlineCallbacks
    def test_a_socket_nobody_listens_on(self):
        path = os.path.join(make_datadir(self), "dead.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()  # the socket file stays, nothing listens
        code, out, err = yield run(["--rpc", f"unix:{path}", "info"], reactor)
        self.assertEqual(code, 1)
        self.assertIn(f"cannot reach the node at unix:{path}", err)
        self.assertEqual(err.count("\n"), 1)


class HttpsOnPlainApiTests(unittest.TestCase):
    """``https://`` against the plain API is closed at once: no long wait."""

    timeout = 10  # the bug: the client used to wait 31 s for an answer

    @defer.inlineCallbacks
    def test_fails_fast_with_a_hint(self):
        node = yield start_node(self, reactor)
        url = api_url(node).replace("http://", "https://")
        client = RpcClient(url, None, reactor=reactor, timeout=30)
        self.addCleanup(client.close)
        started = reactor.seconds()
        with self.assertRaises(RpcConnectionError) as caught:
            yield client.call("getblockcount")
        self.assertLess(reactor.seconds() - started, 5)
        self.assertIn("if the API is plain HTTP, use http://", str(caught.exception))
        self.assertEqual(len(str(caught.exception).splitlines()), 1)


class VersionTests(unittest.TestCase):
    """``timecoin --version`` and ``twistd timecoin --version``."""

    @defer.inlineCallbacks
    def test_cli_version(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code, _, _ = yield run(["--version"])
        self.assertEqual(code, 0)
        self.assertEqual(out.getvalue(), f"timecoin {__version__}\n")

    def test_daemon_version(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), self.assertRaises(SystemExit) as caught:
            Options().parseOptions(["--version"])
        self.assertEqual(caught.exception.code, 0)
        self.assertTrue(out.getvalue().startswith(f"timecoin {__version__} "))
