"""JSON-RPC framing (2.0, and bitcoind's 1.0 style), independent of HTTP and
of the methods.

Decoding refuses what ``json.loads`` would choke on or what is not standard
JSON: bodies nested deeper than :data:`MAX_DEPTH` (checked by a scan of the
brackets outside strings, before parsing, so no ``RecursionError``), and the
non-standard numbers ``NaN``, ``Infinity`` and overflowing floats. Encoding
never emits them either (``allow_nan=False``).
"""

import json
import math
import re

from timecoin.api.client import INTERNAL_ERROR, INVALID_REQUEST

#: Deepest nesting of arrays and objects accepted in a request.
MAX_DEPTH = 32

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_INNERMOST_PAIR = re.compile(rb"\[\]|\{\}")


class ParseError(ValueError):
    """The body is not standard JSON (or is nested too deeply); a one-line reason."""


class InvalidRequest(ValueError):
    """A call is not a JSON-RPC 2.0 request object; ``call_id`` is the id to answer with."""

    def __init__(self, message, call_id=None):
        super().__init__(message)
        self.call_id = call_id


def nesting_exceeds(body, limit=MAX_DEPTH):
    """True if the brackets of ``body`` (bytes) outside strings nest deeper than
    ``limit``, or do not balance (then the body is not JSON either); a body
    with at most ``limit`` openings is never too deep (any imbalance in it is
    left to ``json.loads``, which it cannot drive into deep recursion).

    Each pass removes the innermost ``[]``/``{}`` pairs of every branch, so a
    balanced body of depth ``d`` is empty after ``d`` passes: regular
    expressions do the work, in time linear in the body for each pass.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # too few openings to nest deeper (json.loads finds imbalance)
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", body))
    for _ in range(limit):
        if not brackets:
            return False
        reduced = _INNERMOST_PAIR.sub(b"", brackets)
        if reduced == brackets:
            return True  # unbalanced
        brackets = reduced
    return bool(brackets)


def _refuse_constant(name):
    raise ParseError(f"{name} is not a JSON number")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ParseError(f"{text} is out of range for a number")
    return value


def decode(body):
    """The JSON value of ``body`` (UTF-8 bytes); :class:`ParseError` if it is not
    standard JSON or nests deeper than :data:`MAX_DEPTH`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("the body is not UTF-8") from None
    if nesting_exceeds(body):
        raise ParseError(f"not JSON, or nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ParseError:
        raise
    except ValueError as e:
        raise ParseError(f"not JSON ({str(e).splitlines()[0]})") from None


def _valid_id(value):
    return value is None or isinstance(value, str) or (
        isinstance(value, int | float) and not isinstance(value, bool))


class Call:
    """One valid request: ``method``, ``params`` (list, dict or None), and
    ``call_id`` unless it is a notification (no ``id`` member)."""

    __slots__ = ("call_id", "method", "notification", "params")

    def __init__(self, method, params, call_id, notification):
        self.method = method
        self.params = params
        self.call_id = call_id
        self.notification = notification


def parse_call(call):
    """The :class:`Call` in ``call`` (a decoded JSON value), or
    :class:`InvalidRequest` saying what is wrong with it."""
    if not isinstance(call, dict):
        raise InvalidRequest("a request must be a JSON object")
    call_id = call.get("id")
    if not _valid_id(call_id):
        raise InvalidRequest("id must be a string, a number or null")
    if call.get("jsonrpc") != "2.0":
        raise InvalidRequest('jsonrpc must be "2.0"', call_id)
    method = call.get("method")
    if not isinstance(method, str):
        raise InvalidRequest("method must be a string", call_id)
    params = call.get("params")
    if "params" in call and not isinstance(params, list | dict):
        raise InvalidRequest("params must be an array or an object", call_id)
    return Call(method, params, call_id, "id" not in call)


def result(call_id, value):
    return {"jsonrpc": "2.0", "id": call_id, "result": value}


def error(call_id, code, message):
    return {"jsonrpc": "2.0", "id": call_id, "error": {"code": code, "message": message}}


def invalid_request(message, call_id=None):
    return error(call_id, INVALID_REQUEST, f"invalid request: {message}")


def encode(value):
    """``value`` as JSON bytes; ValueError if it holds NaN or an infinity."""
    return json.dumps(value, allow_nan=False).encode()


def encode_response(response):
    """One response as JSON bytes; a result that is not representable (NaN,
    infinities) becomes an internal error rather than non-standard JSON.
    Returns ``(bytes, problem)``, ``problem`` None unless that happened."""
    try:
        return encode(response), None
    except (TypeError, ValueError) as e:
        replacement = dict(response)
        replacement.pop("result", None)
        if "error" in response:  # JSON-RPC 1.0 keeps both members
            replacement["result"] = None
        replacement["error"] = {"code": INTERNAL_ERROR,
                                "message": "internal error: the result is not "
                                           "representable in JSON"}
        return encode(replacement), str(e)


# -- bitcoind's JSON-RPC 1.0 style (``POST /``) ------------------------------------

def parse_legacy_call(call):
    """The :class:`Call` in a bitcoind-style JSON-RPC 1.0 request (``method``,
    ``params``, ``id``; any ``jsonrpc``/``version`` member is ignored). Every
    call is answered, whatever its id."""
    if not isinstance(call, dict):
        raise InvalidRequest("a request must be a JSON object")
    call_id = call.get("id")
    if not _valid_id(call_id):
        raise InvalidRequest("id must be a string, a number or null")
    method = call.get("method")
    if not isinstance(method, str):
        raise InvalidRequest("method must be a string", call_id)
    params = call.get("params")
    if params is not None and not isinstance(params, list | dict):
        raise InvalidRequest("params must be an array or an object", call_id)
    return Call(method, params, call_id, False)


def legacy_result(call_id, value):
    """A JSON-RPC 1.0 response: ``result``, ``error`` (null) and ``id``, always all three."""
    return {"result": value, "error": None, "id": call_id}


def legacy_error(call_id, code, message):
    """A JSON-RPC 1.0 error response: ``result`` null, ``error`` ``{code, message}``."""
    return {"result": None, "error": {"code": code, "message": message}, "id": call_id}


class Framing:
    """How responses are built in one JSON-RPC dialect: ``parse(payload)`` →
    :class:`Call`, ``result(id, value)`` and ``error(id, code, message)``."""

    def __init__(self, parse, result, error):
        self.parse = parse
        self.result = result
        self.error = error

    def invalid_request(self, message, call_id=None):
        return self.error(call_id, INVALID_REQUEST, f"invalid request: {message}")


#: JSON-RPC 2.0 (``POST /rpc``).
V2 = Framing(parse_call, result, error)
#: bitcoind's JSON-RPC 1.0 style (``POST /``).
LEGACY = Framing(parse_legacy_call, legacy_result, legacy_error)
