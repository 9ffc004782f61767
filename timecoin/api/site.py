"""The HTTP API: ``/rpc`` (JSON-RPC 2.0, HTTP Basic auth), ``/health``, ``/metrics``.

Credentials are the cookie (``__cookie__:<hex>`` in ``<datadir>/.cookie``,
written at start with mode 0600) or ``rpcuser``/``rpcpassword`` from the
``[api]`` config section. Requests larger than ``MAX_BODY`` are refused before
they are parsed; a JSON-RPC batch holds at most ``MAX_BATCH`` calls.
"""

import base64
import hmac
import json
import os
import secrets

from prometheus_client.twisted import MetricsResource
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from timecoin.api.rpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    PARSE_ERROR,
    RpcError,
    RpcMethods,
)

MAX_BODY = 64 * 2**20
MAX_BATCH = 1000
COOKIE_USER = "__cookie__"


def write_cookie(datadir):
    """Write a fresh cookie file (mode 0600); return ``(user, password)``."""
    password = secrets.token_hex(32)
    path = os.path.join(datadir, ".cookie")
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{COOKIE_USER}:{password}")
    os.replace(tmp, path)
    return COOKIE_USER, password


def remove_cookie(datadir):
    try:
        os.unlink(os.path.join(datadir, ".cookie"))
    except FileNotFoundError:
        pass


def _json(request, code, body):
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(body).encode()


class HealthResource(resource.Resource):
    """``GET /health``: 200 with the node's status (an ``INodeQueries``), no
    authentication."""

    isLeaf = True

    def __init__(self, queries):
        super().__init__()
        self._queries = queries

    def render_GET(self, request):
        return _json(request, 200, self._queries.health())


class RpcResource(resource.Resource):
    """``POST /rpc``: JSON-RPC 2.0 with HTTP Basic authentication."""

    isLeaf = True
    log = Logger()

    def __init__(self, methods, credentials):
        super().__init__()
        self._methods = methods
        self._credentials = [f"{u}:{p}".encode() for u, p in credentials]

    def _authorized(self, request):
        header = request.getHeader(b"authorization") or b""
        if not header.startswith(b"Basic "):
            return False
        try:
            given = base64.b64decode(header[6:], validate=True)
        except ValueError:
            return False
        return any(hmac.compare_digest(given, c) for c in self._credentials)

    def render_POST(self, request):
        if not self._authorized(request):
            request.setHeader(b"www-authenticate", b'Basic realm="timecoin"')
            return _json(request, 401, {"error": "authentication required"})
        body = request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return _json(request, 413, {"error": f"request larger than {MAX_BODY} bytes"})
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _json(request, 200, _error(None, PARSE_ERROR, "parse error: not JSON"))
        if isinstance(payload, list):
            if not payload or len(payload) > MAX_BATCH:
                return _json(request, 200, _error(
                    None, INVALID_REQUEST, f"a batch holds 1 to {MAX_BATCH} calls"))
            responses = [self._one(call) for call in payload]
            waiting = [i for i, r in enumerate(responses) if isinstance(r, defer.Deferred)]
            if not waiting:
                return _json(request, 200, responses)  # every call answered at once
            d = _gather(responses, waiting)
        else:
            response = self._one(payload)
            if not isinstance(response, defer.Deferred):
                return _json(request, 200, response)
            d = response
        d.addCallback(lambda response: self._finish(request, response))
        d.addErrback(self._crashed, request)
        return server.NOT_DONE_YET

    def _one(self, call):
        """The response to one call: a dict, or a Deferred of one if it must wait."""
        if not isinstance(call, dict) or call.get("jsonrpc") != "2.0" or "method" not in call:
            return _error(call.get("id") if isinstance(call, dict) else None,
                          INVALID_REQUEST, "invalid JSON-RPC 2.0 request")
        call_id = call.get("id")
        d = self._methods.call(call["method"], call.get("params", []))
        d.addCallbacks(lambda result: {"jsonrpc": "2.0", "id": call_id, "result": result},
                       lambda f: self._failed(f, call_id, call["method"]))
        # Most calls are answered at once: then the response is returned as is.
        # (A fired Deferred may still wait on one chained to it: ask, don't peek.)
        answered = []
        d.addCallback(lambda response: (answered.append(response), response)[1])
        return answered[0] if answered else d

    def _failed(self, failure, call_id, method):
        if failure.check(RpcError):
            return _error(call_id, failure.value.code, failure.value.message)
        self.log.failure("RPC {method} failed", failure, method=method)
        return _error(call_id, INTERNAL_ERROR, f"internal error: {failure.getErrorMessage()}")

    def _finish(self, request, response):
        if request._disconnected:
            return
        request.write(_json(request, 200, response))
        request.finish()

    def _crashed(self, failure, request):
        self.log.failure("RPC request failed", failure)
        if not request._disconnected:
            request.write(_json(request, 500, {"error": "internal error"}))
            request.finish()


def _gather(responses, waiting):
    """Fire with ``responses`` once the Deferreds at the ``waiting`` indexes have
    fired, each replaced by its result (a lighter ``gatherResults``: the
    per-call Deferreds never fail, ``_one`` turns failures into responses)."""
    done = defer.Deferred()
    left = [len(waiting)]

    def settle(result, index):
        responses[index] = result
        left[0] -= 1
        if not left[0]:
            done.callback(responses)

    for index in waiting:
        responses[index].addCallback(settle, index)
    return done


def _error(call_id, code, message):
    return {"jsonrpc": "2.0", "id": call_id, "error": {"code": code, "message": message}}


class QuietSite(server.Site):
    """A ``Site`` without per-request access log lines (they cost more than the
    requests at load; the metrics count requests instead)."""

    def log(self, request):
        pass


def build_site(node, credentials, stop=None):
    """The API's ``Site`` for ``node`` (an ``INodeApi``): ``/rpc``, ``/health``
    and ``/metrics``."""
    root = resource.Resource()
    root.putChild(b"rpc", RpcResource(RpcMethods(node, stop), credentials))
    root.putChild(b"health", HealthResource(node.queries))
    root.putChild(b"metrics", MetricsResource(registry=node.metrics.registry))
    site = QuietSite(root)
    site.displayTracebacks = False
    site.noisy = False
    return site
