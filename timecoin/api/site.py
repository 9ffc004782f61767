"""The HTTP API: ``/rpc`` (JSON-RPC 2.0, HTTP Basic auth), ``POST /`` (the same
in bitcoind's JSON-RPC 1.0 style), ``/health``, ``/ready``, ``/metrics`` and the
status page at ``GET /``.

Credentials are the cookie (``__cookie__:<hex>`` in ``<datadir>/.cookie``,
written at start with mode 0600) or ``rpcuser``/``rpcpassword`` from the
``[api]`` config section. The limits applied before any work (credentials and
body size from the headers, the connection cap) are in :mod:`timecoin.api.guard`;
a JSON-RPC batch holds at most ``MAX_BATCH`` calls. doc/limits.md lists them.
"""

import json
import os
import secrets

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
from timecoin.api.metrics_page import MetricsPage
from timecoin.api.rpc import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RpcError,
    RpcMethods,
)
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
    framing = jsonrpc.V2

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
            return self._encode(request, self.framing.error(None, PARSE_ERROR,
                                                            f"parse error: {e}"))
        if isinstance(payload, list):
            if not payload or len(payload) > MAX_BATCH:
                return self._encode(request, self.framing.invalid_request(
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
            call = self.framing.parse(payload)
        except jsonrpc.InvalidRequest as e:
            return self.framing.invalid_request(str(e), e.call_id)
        d = self._methods.call(call.method, call.params)
        d.addCallbacks(lambda value: self.framing.result(call.call_id, value),
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
            return self.framing.error(call_id, failure.value.code, failure.value.message)
        self.log.failure("RPC {method} failed", failure, method=method)
        return self.framing.error(call_id, INTERNAL_ERROR,
                             f"internal error: {failure.getErrorMessage()}")

    def _reply(self, request, responses, batch):
        """The HTTP body for ``responses`` (notifications' Nones left out)."""
        parts = [self._encoded(r) for r in responses if r is not None]
        if not parts:
            request.setResponseCode(204)
            return b""
        request.setResponseCode(200 if batch else self._status(responses[0]))
        request.setHeader(b"content-type", b"application/json")
        return b"[" + b", ".join(parts) + b"]" if batch else parts[0]

    def _status(self, response):
        """The HTTP status of a single call's ``response`` (JSON-RPC 2.0: 200)."""
        return 200

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


class LegacyRpcResource(RpcResource):
    """``POST /``: the same methods and authentication as :class:`RpcResource`
    in bitcoind's JSON-RPC 1.0 style, for bitcoin client libraries. Every
    response holds ``result``, ``error`` (``{code, message}`` or null) and
    ``id``; a single call that fails is answered with bitcoind's HTTP status
    (404 for an unknown method, 400 for an invalid request, 500 otherwise)."""

    framing = jsonrpc.LEGACY

    def _status(self, response):
        err = response.get("error")
        if err is None:
            return 200
        return _LEGACY_STATUS.get(err.get("code"), 500)


_LEGACY_STATUS = {METHOD_NOT_FOUND: 404, INVALID_REQUEST: 400}


class RootResource(resource.Resource):
    """``/`` itself, dispatched by HTTP method: ``POST`` to ``post`` (the
    JSON-RPC 1.0 endpoint), ``GET`` to ``get`` when one is given."""

    isLeaf = True

    def __init__(self, post, get=None):
        super().__init__()
        self._post = post
        self._get = get

    def render_POST(self, request):
        return self._post.render(request)

    def render_GET(self, request):
        if self._get is None:
            return resource.NoResource().render(request)
        return self._get.render(request)


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
    """The API's ``Site`` for ``node`` (an ``INodeApi``): ``/rpc``, ``POST /``,
    ``/health`` and ``/metrics``, with at most ``max_connections`` open
    connections; ``GET /`` is the status page."""
    accepted = Credentials(credentials)
    methods = RpcMethods(node, stop)
    root = resource.Resource()
    # GET / is the status page for people, POST / JSON-RPC 1.0 for bitcoin clients.
    root.putChild(b"", RootResource(post=LegacyRpcResource(methods, accepted),
                                    get=StatusPageResource(node)))
    root.putChild(b"rpc", RpcResource(methods, accepted))
    root.putChild(b"health", HealthResource(node.queries))
    root.putChild(b"ready", ReadyResource(node.queries))
    root.putChild(b"metrics", MetricsPage(node.metrics.registry))
    metrics = ApiMetrics(node.metrics.registry)
    return GuardedSite(root, accepted, metrics, max_connections, reactor=node.reactor)
