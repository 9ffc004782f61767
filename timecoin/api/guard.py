"""The API's limits, applied before any work: credentials and body size on the
request headers, a cap on open connections, an idle timeout.

A request carrying a body (``Content-Length`` above 0, or chunked) must be
authenticated: without valid credentials it is answered 401 as soon as its
headers have arrived, and the connection is closed, so nothing is read or
spooled. A body over :data:`MAX_BODY` is refused (413) from its
``Content-Length``, or, when chunked, as soon as it passes the limit.
When the cap is reached, a new connection evicts the least recently active
open connection that has no request in progress (idle keep-alive or silent
connections), so idle connections cannot keep a client out; only when every
open connection is answering a request is the new one closed at once, before
a byte is read. A connection opening with a TLS handshake (an ``https://``
client on the plain API) is closed at once rather than left waiting.
"""

import base64
import hmac
import json
import os
import resource
from collections import OrderedDict

from prometheus_client import Counter, Gauge
from twisted.logger import Logger
from twisted.web import http, server

MAX_BODY = 64 * 2**20
#: Seconds a connection may stay idle between requests (a request being
#: answered, such as a long ``waitfortransaction``, is not idle).
IDLE_TIMEOUT_S = 60
#: Default of ``[api] max_connections``.
DEFAULT_MAX_CONNECTIONS = 100
#: The first byte of a TLS handshake record: no HTTP request starts with it.
TLS_HANDSHAKE = b"\x16"

log = Logger()


class Credentials:
    """The accepted HTTP Basic credentials (``(user, password)`` pairs)."""

    def __init__(self, pairs):
        self._accepted = [f"{u}:{p}".encode() for u, p in pairs]

    def authorized(self, headers):
        """True if ``headers`` (twisted ``Headers``) carry accepted credentials."""
        header = headers.getRawHeaders(b"authorization", [b""])[0]
        if not header.startswith(b"Basic "):
            return False
        try:
            given = base64.b64decode(header[6:], validate=True)
        except ValueError:
            return False
        # Compare with every pair, so the time taken does not tell which matched.
        matches = [hmac.compare_digest(given, c) for c in self._accepted]
        return any(matches)


class ApiMetrics:
    """The API's metrics, in the node's registry."""

    def __init__(self, registry):
        self.refused = Counter(
            "timecoin_api_refused", "API requests and connections refused before any work, "
            "by reason", ["reason"], registry=registry)
        for reason in ("unauthenticated", "body_too_large", "connection_cap"):
            self.refused.labels(reason)
        self.connections = Gauge("timecoin_api_connections", "Open API connections",
                                 registry=registry)
        self.evicted = Counter(
            "timecoin_api_connections_evicted", "Idle API connections closed to admit a "
            "new one when the connection cap was reached", registry=registry)
        self.connections_max = Gauge("timecoin_api_connections_max",
                                     "Cap on open API connections", registry=registry)


def _raw_response(code, message, extra=()):
    body = json.dumps({"error": message}).encode()
    lines = [b"HTTP/1.1 %d %s" % (code, http.RESPONSES.get(code, b"Refused")),
             b"Content-Type: application/json", b"Content-Length: %d" % len(body),
             b"Connection: close", *extra]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class GuardedRequest(server.Request):
    """A request checked when its headers are complete, before its body is read."""

    _refused = False
    _received = 0

    def gotLength(self, length):
        site = self.channel.site
        has_body = length is None or length > 0
        if has_body and not site.credentials.authorized(self.requestHeaders):
            self._refuse(401, "authentication required", "unauthenticated",
                         (b'WWW-Authenticate: Basic realm="timecoin"',))
        elif length is not None and length > site.max_body:
            self._refuse(413, f"request larger than {site.max_body} bytes", "body_too_large")
        else:
            super().gotLength(length)

    def handleContentChunk(self, data):
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.channel.site.max_body:
            self._refuse(413, f"request larger than {self.channel.site.max_body} bytes",
                         "body_too_large")
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        if not self._refused:
            super().requestReceived(command, path, version)

    def _refuse(self, code, message, reason, extra=()):
        """Answer at once and close: what the client sends next is never read."""
        self._refused = True
        if self.content is not None:
            self.content.close()
            self.content = None
        # No "100 Continue" after the refusal (it is sent after gotLength).
        self.requestHeaders.removeHeader(b"expect")
        self.channel.site.metrics.refused.labels(reason).inc()
        self.channel.transport.write(_raw_response(code, message, extra))
        self.channel.loseConnection()


class GuardedChannel(http.HTTPChannel):
    """An HTTP channel that tells its site when it is active and when it closes
    (for the connection count and eviction). ``busy`` is true from a request's
    complete headers until its response is done."""

    busy = False
    _first_data = True

    def dataReceived(self, data):
        if self._first_data:
            self._first_data = False
            if data[:1] == TLS_HANDSHAKE:
                # A TLS client (https:// against plain HTTP) would otherwise wait
                # for an answer to a request line that never ends: close at once.
                log.info("API: closed a TLS handshake on plain HTTP from {peer}",
                              peer=self.transport.getPeer())
                self.transport.abortConnection()
                return
        self.site.channel_active(self)
        super().dataReceived(data)

    def allHeadersReceived(self):
        self.busy = True
        super().allHeadersReceived()

    def requestDone(self, request):
        # Before the base class: it may start a pipelined request at once.
        self.busy = False
        self.site.channel_active(self)
        super().requestDone(request)

    def connectionLost(self, reason):
        self.site.connection_closed(self)
        super().connectionLost(reason)


class GuardedSite(server.Site):
    """A ``Site`` with the API's limits: :class:`GuardedRequest` requests, at
    most ``max_connections`` open connections (a new one evicts the least
    recently active idle one when the cap is reached), an idle timeout, and no
    per-request access log lines (they cost more than the requests at load; the
    metrics count requests instead)."""

    protocol = GuardedChannel
    requestFactory = GuardedRequest

    def __init__(self, root, credentials, metrics, max_connections, reactor=None,
                 max_body=MAX_BODY):
        super().__init__(root, timeout=IDLE_TIMEOUT_S, reactor=reactor)
        self.credentials = credentials
        self.metrics = metrics
        self.max_connections = max_connections
        self.max_body = max_body
        self.open_connections = 0
        #: Open channels counted against the cap, least recently active first.
        self._channels = OrderedDict()
        self.displayTracebacks = False
        self.noisy = False
        metrics.connections_max.set(max_connections)

    def buildProtocol(self, addr):
        if self.open_connections >= self.max_connections and not self._evict_idle():
            self.metrics.refused.labels("connection_cap").inc()
            return None  # the listening port closes the socket at once
        channel = super().buildProtocol(addr)
        self._channels[channel] = None
        self.open_connections += 1
        self.metrics.connections.set(self.open_connections)
        return channel

    def _evict_idle(self):
        """Close the least recently active connection with no request in
        progress; False if every open connection is busy."""
        for channel in self._channels:
            if not channel.busy:
                break
        else:
            return False
        # Uncounted at once (its descriptor is freed on the next reactor turn).
        self._forget(channel)
        self.metrics.evicted.inc()
        channel.transport.abortConnection()
        return True

    def channel_active(self, channel):
        """``channel`` received bytes or finished a response: least evictable."""
        if channel in self._channels:
            self._channels.move_to_end(channel)

    def connection_closed(self, channel):
        self._forget(channel)

    def _forget(self, channel):
        if self._channels.pop(channel, False) is None:
            self.open_connections -= 1
            self.metrics.connections.set(self.open_connections)

    def log(self, request):
        pass


def open_file_limit():
    """The soft limit on open files, or None if unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def open_file_count():
    """File descriptors open in this process (0 where it cannot be told)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def connection_cap(configured, reserved, limit=None, in_use=None):
    """``configured``, lowered so that ``reserved`` descriptors stay free for
    storage and peers under the open-file ``limit`` (default: the process's)
    with ``in_use`` already open; never below 1. Logs why it lowers it."""
    limit = open_file_limit() if limit is None else limit
    if limit is None:
        return configured
    in_use = open_file_count() if in_use is None else in_use
    available = limit - in_use - reserved
    if available >= configured:
        return configured
    cap = max(1, available)
    log.warn(
        "API connections capped at {cap} (max_connections is {configured}): the open-file "
        "limit is {limit}, {in_use} are open and {reserved} are kept for storage and peers",
        cap=cap, configured=configured, limit=limit, in_use=in_use, reserved=reserved)
    return cap
