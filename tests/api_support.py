"""Helpers for the API tests: the log as events, raw HTTP over TCP, posting bytes."""

import base64
import json

import treq
from twisted.internet import defer, protocol
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.logger import LogLevel, globalLogPublisher

from tests.support import api_url, cookie


class LogCapture:
    """Every event logged while a test runs (removed at its end)."""

    def __init__(self, testcase):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        testcase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def tracebacks(self):
        """Events that carry a failure (a traceback) or are critical."""
        return [e for e in self.events
                if "log_failure" in e or e.get("log_level") == LogLevel.critical]

    def messages(self, level):
        return [e.get("log_format", "") for e in self.events if e.get("log_level") == level]


class RawHttp(protocol.Protocol):
    """A TCP client that records what it receives; ``closed`` fires with it
    when the server closes the connection."""

    def __init__(self):
        self.received = b""
        self.closed = defer.Deferred()
        self.connected = False

    def connectionMade(self):
        self.connected = True

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.connected = False
        self.closed.callback(self.received)


class RawHttpFactory(protocol.Factory):
    """Builds :class:`RawHttp` clients."""

    def buildProtocol(self, addr):
        return RawHttp()


def connect_raw(reactor, node):
    """A Deferred of a connected :class:`RawHttp` to ``node``'s API."""
    port = node.getServiceNamed("api").port.getHost().port
    return TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(RawHttpFactory())


def basic_auth(node):
    user, password = cookie(node)
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


@defer.inlineCallbacks
def post_rpc(node, body, auth=True):
    """POST ``body`` (bytes, or a value to encode) to ``/rpc``: ``(status, decoded or None)``."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    response = yield treq.post(api_url(node) + "/rpc", data=body, persistent=False,
                               auth=cookie(node) if auth else None)
    content = yield response.content()
    return response.code, (json.loads(content) if content else None)
