"""JSON-RPC 2.0 methods of a node, independent of HTTP.

Each method validates its parameters and returns a value or a Deferred;
errors are :class:`RpcError` with a code (bitcoind's where one applies) and a
one-line message.
"""

import inspect

from twisted.internet import defer

from timecoin.api.client import (  # the codes are shared with the client
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    MISSING_INPUTS,
    NOT_FOUND,
    PARSE_ERROR,
    TX_REJECTED,
)
from timecoin.ledger.keys import AddressError
from timecoin.ledger.tx import TxRejected, decode_hex

__all__ = ["INTERNAL_ERROR", "INVALID_REQUEST", "PARSE_ERROR", "RpcError", "RpcMethods"]

MAX_WAIT_S = 600


class RpcError(Exception):
    """A JSON-RPC error: ``code`` and a one-line ``message``."""

    def __init__(self, code, message):
        super().__init__(code, message)
        self.code = code
        self.message = message


def _txid(value):
    try:
        txid = bytes.fromhex(value)
    except (TypeError, ValueError):
        txid = b""
    if len(txid) != 32:
        raise RpcError(INVALID_PARAMS, "txid must be 64 hexadecimal characters")
    return txid


def _address(value):
    if not isinstance(value, str):
        raise RpcError(INVALID_PARAMS, "address must be a string")
    return value


class RpcMethods:
    """The methods of the specification, bound to one node (an ``INodeApi``:
    its read side answers, its ``submit`` takes transactions)."""

    def __init__(self, node, stop=None):
        self.node = node
        self.queries = node.queries
        self._stop = stop
        self.methods = {
            "getinfo": self.getinfo, "sendrawtransaction": self.sendrawtransaction,
            "gettransaction": self.gettransaction,
            "waitfortransaction": self.waitfortransaction, "getbalance": self.getbalance,
            "listunspent": self.listunspent, "getblockcount": self.getblockcount,
            "getblock": self.getblock, "getmempoolinfo": self.getmempoolinfo,
            "gettxoutsetinfo": self.gettxoutsetinfo, "getpeerinfo": self.getpeerinfo,
            "getmasternodes": self.getmasternodes, "stop": self.stop,
            "listbanned": self.listbanned, "setban": self.setban,
            "clearbanned": self.clearbanned,
        }
        self._signatures = {}

    def call(self, method, params):
        """Fire with the result of ``method(*params)`` or fail with :class:`RpcError`."""
        fn = self.methods.get(method) if isinstance(method, str) else None
        if fn is None:
            return defer.fail(RpcError(METHOD_NOT_FOUND, f"method not found: {method}"))
        args, kwargs = (params, {}) if isinstance(params, list) else ((), params)
        if not isinstance(params, list | dict):
            return defer.fail(RpcError(INVALID_PARAMS, "params must be an array or object"))
        problem = self._check_params(method, fn, args, kwargs)
        if problem is not None:
            return defer.fail(RpcError(INVALID_PARAMS, f"{method}: {problem}"))
        return defer.maybeDeferred(fn, *args, **kwargs).addErrback(_translate)

    def _check_params(self, method, fn, args, kwargs):
        """Why ``args``/``kwargs`` do not fit ``fn``, or None (arity cached per method)."""
        shape = self._signatures.get(method)
        if shape is None:
            signature = inspect.signature(fn)
            required = sum(1 for p in signature.parameters.values() if p.default is p.empty)
            shape = self._signatures[method] = (signature, required, len(signature.parameters))
        signature, required, allowed = shape
        if not kwargs:
            if required <= len(args) <= allowed:
                return None
            return f"takes {required} to {allowed} parameters, {len(args)} given"
        try:
            signature.bind(*args, **kwargs)
        except TypeError as e:
            return str(e)
        return None

    # -- methods -------------------------------------------------------------

    def getinfo(self):
        return self.queries.info()

    def sendrawtransaction(self, hex):  # noqa: A002 - the specification's name
        d = self.node.submit(decode_hex(hex))
        return d.addCallback(lambda txid: txid.hex())

    def gettransaction(self, txid):
        return self.queries.transaction_status(_txid(txid)).addCallback(_found(txid))

    def waitfortransaction(self, txid, timeout_s=60):
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not (
                0 <= timeout_s <= MAX_WAIT_S):
            raise RpcError(INVALID_PARAMS, f"timeout_s must be a number from 0 to {MAX_WAIT_S}")
        d = self.queries.wait_for_transaction(_txid(txid), timeout_s)
        return d.addCallback(_found(txid))

    def getbalance(self, address):
        return self.queries.balance(_address(address))

    def listunspent(self, address):
        d = self.queries.unspent(_address(address))
        return d.addCallback(lambda rows: [
            {"txid": op.txid.hex(), "vout": op.vout, "amount": amount, "status": status}
            for op, amount, status in rows
        ])

    def getblockcount(self):
        return self.queries.height()

    def getblock(self, height_or_hash):
        key = height_or_hash
        if isinstance(key, str):
            try:
                key = bytes.fromhex(key)
            except ValueError:
                raise RpcError(INVALID_PARAMS, "block hash must be hexadecimal") from None
        elif isinstance(key, bool) or not isinstance(key, int):
            raise RpcError(INVALID_PARAMS, "give a block height or hash")
        block = self.queries.block(key)
        if block is None:
            raise RpcError(NOT_FOUND, f"block not found: {height_or_hash}")
        return block

    def getmempoolinfo(self):
        return self.queries.mempool_info()

    def gettxoutsetinfo(self):
        return self.queries.txoutset_info()

    def getpeerinfo(self):
        net = self.node.peer_network
        return net.peer_info() if net is not None else []

    def getmasternodes(self):
        return self.queries.masternodes()

    def stop(self):
        if self._stop is None:
            raise RpcError(INTERNAL_ERROR, "this node cannot be stopped over RPC")
        self.node.reactor.callLater(0.05, self._stop)
        return "timecoin stopping"

    def _network(self):
        net = self.node.peer_network
        if net is None:
            raise RpcError(METHOD_NOT_FOUND, "this node has no peer network")
        return net

    def listbanned(self):
        return self._network().list_banned()

    def setban(self, address, command="add", seconds=None):
        if command not in ("add", "remove"):
            raise RpcError(INVALID_PARAMS, "command must be 'add' or 'remove'")
        return self._network().set_ban(address, seconds, remove=(command == "remove"))

    def clearbanned(self):
        return self._network().clear_banned()


def _found(txid):
    def check(result):
        if result is None:
            raise RpcError(NOT_FOUND, f"transaction not found: {txid}")
        return result
    return check


def _translate(failure):
    """Turn domain errors into RPC errors; anything else stays an internal error."""
    e = failure.value
    if isinstance(e, TxRejected):
        code = MISSING_INPUTS if e.code == "missing-input" else TX_REJECTED
        raise RpcError(code, str(e))
    if isinstance(e, AddressError):
        raise RpcError(NOT_FOUND, str(e))
    return failure
