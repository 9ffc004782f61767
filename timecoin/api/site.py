"""The HTTP API: ``/rpc`` (JSON-RPC 2.0, HTTP Basic auth), ``/health``, ``/ready``,
``/metrics`` and the status page at ``GET /``.

Credentials are the cookie (``__cookie__:<hex>`` in ``<datadir>/.cookie``,
written at start with mode 0600) or ``rpcuser``/``rpcpassword`` from the
``[api]`` config section. The limits applied before any work (credentials and
body size from the headers, the connection cap) are in :mod:`timecoin.api.guard`;
a JSON-RPC batch holds at most ``MAX_BATCH`` calls. doc/limits.md lists them.
"""

import json
import os
import secrets

from prometheus_client.twisted import MetricsResource
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from timecoin.api import jsonrpc
from timecoin.api.guard import (
    DEFAULT_MAX_CONNECTIONS,
    MAX_BODY,
    ApiMetrics,
    Credentials,
    GuardedSite,
)
from timecoin.api.rpc import INTERNAL_ERROR, PARSE_ERROR, RpcError, RpcMethods
from timecoin.api.status_page import StatusPageResource

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


class ReadyResource(resource.Resource):
    """``GET /ready``: the ``/health`` JSON, 200 when ``ok`` and 503 otherwise (for
    load balancers and orchestrators), no authentication."""

    isLeaf = True

    def __init__(self, queries):
        super().__init__()
        self._queries = queries

    def render_GET(self, request):
        health = self._queries.health()
        return _json(request, 200 if health["status"] == "ok" else 503, health)


class RpcResource(resource.Resource):
    """``POST /rpc``: JSON-RPC 2.0 with HTTP Basic authentication, answering
    from ``methods`` (an ``IRpcMethods``). Notifications (calls without an
    ``id``) run and get no response; a request of notifications only is
    answered 204 without a body."""

    isLeaf = True
    log = Logger()

    def __init__(self, methods, credentials):
        super().__init__()
        self._methods = methods
        self._credentials = credentials

    def render_POST(self, request):
        # Requests with a body were checked on their headers (GuardedRequest);
        # this covers the others, and a resource served by a plain Site.
        if not self._credentials.authorized(request.requestHeaders):
            request.setHeader(b"www-authenticate", b'Basic realm="timecoin"')
            return _json(request, 401, {"error": "authentication required"})
        body = request.content.read(MAX_BODY + 1) if request.content is not None else b""
        if len(body) > MAX_BODY:
            return _json(request, 413, {"error": f"request larger than {MAX_BODY} bytes"})
        try:
            payload = jsonrpc.decode(body)
        except jsonrpc.ParseError as e:
            return self._encode(request, jsonrpc.error(None, PARSE_ERROR, f"parse error: {e}"))
        if isinstance(payload, list):
            if not payload or len(payload) > MAX_BATCH:
                return self._encode(request, jsonrpc.invalid_request(
                    f"a batch holds 1 to {MAX_BATCH} calls"))
            responses = [self._one(call) for call in payload]
        else:
            responses = [self._one(payload)]
        batch = isinstance(payload, list)
        waiting = [i for i, r in enumerate(responses) if isinstance(r, defer.Deferred)]
        if not waiting:
            return self._reply(request, responses, batch)  # every call answered at once
        d = _gather(responses, waiting)
        d.addCallback(lambda done: self._finish(request, done, batch))
        d.addErrback(self._crashed, request)
        return server.NOT_DONE_YET

    def _one(self, payload):
        """The response to one call: a dict, None for a notification, or a
        Deferred of either if it must wait."""
        try:
            call = jsonrpc.parse_call(payload)
        except jsonrpc.InvalidRequest as e:
            return jsonrpc.invalid_request(str(e), e.call_id)
        d = self._methods.call(call.method, call.params)
        d.addCallbacks(lambda value: jsonrpc.result(call.call_id, value),
                       lambda f: self._failed(f, call.call_id, call.method))
        if call.notification:
            d.addCallback(lambda _: None)
        # Most calls are answered at once: then the response is returned as is.
        # (A fired Deferred may still wait on one chained to it: ask, don't peek.)
        answered = []
        d.addCallback(lambda response: (answered.append(response), response)[1])
        return answered[0] if answered else d

    def _failed(self, failure, call_id, method):
        if failure.check(RpcError):
            return jsonrpc.error(call_id, failure.value.code, failure.value.message)
        self.log.failure("RPC {method} failed", failure, method=method)
        return jsonrpc.error(call_id, INTERNAL_ERROR,
                             f"internal error: {failure.getErrorMessage()}")

    def _reply(self, request, responses, batch):
        """The HTTP body for ``responses`` (notifications' Nones left out)."""
        parts = [self._encoded(r) for r in responses if r is not None]
        if not parts:
            request.setResponseCode(204)
            return b""
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/json")
        return b"[" + b", ".join(parts) + b"]" if batch else parts[0]

    def _encode(self, request, response):
        return self._reply(request, [response], False)

    def _encoded(self, response):
        data, problem = jsonrpc.encode_response(response)
        if problem is not None:
            self.log.error("RPC response not representable in JSON: {problem}",
                           problem=problem)
        return data

    def _finish(self, request, responses, batch):
        if request._disconnected:
            return
        body = self._reply(request, responses, batch)
        if body:
            request.write(body)
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


def build_site(node, credentials, stop=None, max_connections=DEFAULT_MAX_CONNECTIONS):
    """The API's ``Site`` for ``node`` (an ``INodeApi``): ``/rpc``, ``/health``
    and ``/metrics``, with at most ``max_connections`` open connections."""
    accepted = Credentials(credentials)
    root = resource.Resource()
    root.putChild(b"rpc", RpcResource(RpcMethods(node, stop), accepted))
    root.putChild(b"health", HealthResource(node.queries))
    root.putChild(b"ready", ReadyResource(node.queries))
    root.putChild(b"", StatusPageResource(node))  # GET /: the status page
    root.putChild(b"metrics", MetricsResource(registry=node.metrics.registry))
    metrics = ApiMetrics(node.metrics.registry)
    return GuardedSite(root, accepted, metrics, max_connections, reactor=node.reactor)
