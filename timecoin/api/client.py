"""A JSON-RPC 2.0 client for a timecoin node's API, built on treq.

The node serves JSON-RPC at ``POST <api url>/rpc`` behind HTTP Basic auth.
Credentials come from the cookie file the node writes at start-up
(``<datadir>/.cookie``, holding ``__cookie__:<hex>``), see :func:`read_cookie`,
or from ``rpcuser``/``rpcpassword`` in the ``[api]`` section of the node's
configuration file, see :func:`read_credentials`.

Errors are reported as exceptions, all subclasses of :class:`RpcClientError`:

- :class:`RpcError`: the node answered with a JSON-RPC error (``code``,
  ``message``);
- :class:`RpcAuthError`: the node refused the credentials (HTTP 401);
- :class:`RpcConnectionError`: the node could not be reached, or answered
  with something that is not JSON-RPC.
"""

import itertools
import json
import os
import tomllib

from twisted.internet import defer
from twisted.internet import error as ierror
from twisted.web.client import RequestTransmissionFailed, ResponseFailed

from timecoin.api.address import ApiUrlError, parse_api_url  # noqa: F401 (ApiUrlError re-exported)

#: JSON-RPC error codes a node uses.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
TX_REJECTED = -26
MISSING_INPUTS = -25
NOT_FOUND = -5
STARTING_UP = -28

COOKIE_NAME = ".cookie"
CONFIG_NAME = "timecoin.toml"

_CONNECTION_ERRORS = (
    ierror.ConnectError,
    ierror.ConnectionLost,
    ierror.ConnectionClosed,
    ierror.DNSLookupError,
    ierror.TimeoutError,
    defer.CancelledError,
    ResponseFailed,
    RequestTransmissionFailed,
)


class RpcClientError(Exception):
    """Base class of everything :class:`RpcClient` raises."""


class RpcError(RpcClientError):
    """A JSON-RPC error returned by the node: ``code`` and one-line ``message``."""

    def __init__(self, code, message):
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self):
        return self.message

    def __repr__(self):
        return f"RpcError({self.code!r}, {self.message!r})"


class RpcConnectionError(RpcClientError):
    """The node could not be reached or did not answer with JSON-RPC."""


class RpcAuthError(RpcConnectionError):
    """The node refused the credentials (HTTP 401)."""


class CookieError(RpcClientError):
    """The cookie file is missing or malformed."""


def read_cookie(datadir):
    """The ``(user, password)`` in ``<datadir>/.cookie``; :class:`CookieError` if unusable."""
    path = os.path.join(datadir, COOKIE_NAME)
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError as e:
        raise CookieError(f"cannot read the RPC cookie {path}: {e.strerror}") from None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise CookieError(f"the RPC cookie {path} is malformed")
    return user, password


def read_credentials(datadir, config=None):
    """The credentials to use for the node whose data directory is ``datadir``.

    The cookie first; failing that, ``rpcuser``/``rpcpassword`` from the
    ``[api]`` section of ``config`` (default ``<datadir>/timecoin.toml``).
    ``None`` if neither is available (the node will then answer 401).
    """
    try:
        return read_cookie(datadir)
    except CookieError:
        pass
    path = config or os.path.join(datadir, CONFIG_NAME)
    try:
        with open(path, "rb") as f:
            api = tomllib.load(f).get("api", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    user, password = api.get("rpcuser"), api.get("rpcpassword")
    if isinstance(user, str) and isinstance(password, str):
        return user, password
    return None


def rpc_url(url):
    """The URL requests to ``url`` go to (``/rpc`` appended unless it ends with
    it); :class:`ApiUrlError` if ``url`` is malformed."""
    return parse_api_url(url).url


class RpcClient:
    """Calls JSON-RPC methods on one node.

    ``url`` is the node's API base URL (``http://127.0.0.1:24201``; a URL
    already ending in ``/rpc`` is accepted) or ``unix:PATH`` for an API on a
    UNIX socket; a malformed one raises :class:`ApiUrlError`. ``auth`` a ``(user, password)``
    pair or ``None``. ``treq_client`` is anything with treq's ``post`` (an
    ``HTTPClient``, or ``treq.testing.StubTreq`` in tests); without it a client
    is built on ``reactor`` with ``pool`` (default: a persistent pool owned by
    this client, released by :meth:`close`). ``timeout`` bounds each request,
    in seconds (``None``: no bound).
    """

    def __init__(self, url, auth=None, treq_client=None, *, reactor=None, pool=None,
                 timeout=None):
        self.address = parse_api_url(url)
        self.url = self.address.url
        self.auth = tuple(auth) if auth else None
        self.timeout = timeout
        self._reactor = reactor
        self._own_pool = None
        if treq_client is None:
            treq_client, self._own_pool = _make_client(reactor, pool, self.address)
        self._http = treq_client
        self._ids = itertools.count(1)

    def call(self, method, *params, timeout=None):
        """Call ``method``; a Deferred firing with its result or failing with an error.

        ``timeout`` overrides the client's for this request (long-polling
        methods such as ``waitfortransaction`` need more).
        """
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                   "params": list(params)}
        d = self._post(request, timeout)
        d.addCallback(_single_result)
        return d

    def batch(self, calls, timeout=None):
        """Send ``[(method, params), ...]`` as one JSON-RPC batch.

        Fires with a list, in the order of ``calls``, holding each call's
        result or the :class:`RpcError` it got. The whole Deferred fails only
        if the batch as a whole failed (connection, auth, or a batch-level error).
        """
        calls = list(calls)
        if not calls:
            return defer.succeed([])
        requests = [{"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                     "params": list(params)} for method, params in calls]
        d = self._post(requests, timeout)
        d.addCallback(_batch_results, [r["id"] for r in requests])
        return d

    def close(self):
        """Close the persistent connections of the pool this client created."""
        if self._own_pool is not None:
            return self._own_pool.closeCachedConnections()
        return defer.succeed(None)

    @defer.inlineCallbacks
    def _post(self, body, timeout):
        kwargs = {}
        timeout = self.timeout if timeout is None else timeout
        if timeout is not None:
            kwargs["timeout"] = timeout
            if self._reactor is not None:
                kwargs["reactor"] = self._reactor
        if self.auth is not None:
            kwargs["auth"] = self.auth
        try:
            response = yield self._http.post(
                self.url, data=json.dumps(body).encode(),
                headers={b"Content-Type": [b"application/json"]}, **kwargs)
            content = yield response.content()
        except _CONNECTION_ERRORS as e:
            hint = ""
            if self.url.startswith("https:"):
                hint = " (if the API is plain HTTP, use http://)"
            raise RpcConnectionError(
                f"cannot reach the node at {self.address.shown}: {_reason(e)}{hint}") from None
        if response.code == 401:
            raise RpcAuthError(
                f"authentication failed (cookie?) at {self.url}: "
                "check --datadir points at the node's data directory")
        try:
            decoded = json.loads(content)
        except ValueError:
            raise RpcConnectionError(
                f"the node at {self.url} answered HTTP {response.code} without JSON-RPC"
            ) from None
        return decoded


def _make_client(reactor, pool, address):
    from treq.client import HTTPClient
    from twisted.web.client import HTTPConnectionPool

    if reactor is None:
        raise TypeError("RpcClient needs the reactor (or a treq_client) passed in")
    own = None
    if pool is None:
        pool = own = HTTPConnectionPool(reactor, persistent=True)
    return HTTPClient(address.agent(reactor, pool)), own


def _reason(exc):
    if isinstance(exc, ResponseFailed | RequestTransmissionFailed) and exc.reasons:
        return _reason(exc.reasons[0].value)
    if isinstance(exc, ierror.ConnectionRefusedError):
        return "connection refused (is the node running?)"
    if isinstance(exc, ierror.TimeoutError | defer.CancelledError):
        return "timed out"
    text = str(exc).strip()
    return text or type(exc).__name__


def _error_of(response):
    err = response.get("error")
    if err is None:
        return None
    if isinstance(err, dict):
        message = str(err.get("message", "unknown error")).splitlines() or ["unknown error"]
        return RpcError(err.get("code"), message[0])
    return RpcError(None, str(err))


def _single_result(response):
    if not isinstance(response, dict):
        raise RpcConnectionError("the node's answer is not a JSON-RPC response")
    err = _error_of(response)
    if err is not None:
        raise err
    if "result" not in response:
        raise RpcConnectionError("the node's answer has neither result nor error")
    return response["result"]


def _batch_results(responses, ids):
    if isinstance(responses, dict):
        # A batch-level failure (parse error, invalid request) is one object.
        raise _error_of(responses) or RpcConnectionError("unexpected answer to a batch")
    if not isinstance(responses, list):
        raise RpcConnectionError("the node's answer to a batch is not a list")
    by_id = {r.get("id"): r for r in responses if isinstance(r, dict)}
    results = []
    for i in ids:
        r = by_id.get(i)
        if r is None:
            results.append(RpcError(INTERNAL_ERROR, f"no response for request {i}"))
        else:
            err = _error_of(r)
            results.append(err if err is not None else r.get("result"))
    return results
