"""JSON-RPC 2.0 methods of a node, independent of HTTP.

Parameters are checked against the method's entry in
:data:`timecoin.api.catalog.CATALOG` before the method runs, and arrive
converted (a txid as bytes); methods return a value or a Deferred. Errors are
:class:`RpcError` with a code (bitcoind's where one applies) and a one-line
message.
"""

import os

from twisted.internet import defer
from zope.interface import implementer

from timecoin.api.catalog import CATALOG, METHODS
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
from timecoin.api.params import ParamError
from timecoin.interfaces import IRpcMethods
from timecoin.ledger.keys import AddressError
from timecoin.ledger.tx import TxRejected, decode_hex
from timecoin.proofs.source import ProofUnavailable

__all__ = ["INTERNAL_ERROR", "INVALID_REQUEST", "METHOD_NOT_FOUND", "PARSE_ERROR", "RpcError",
           "RpcMethods"]


class RpcError(Exception):
    """A JSON-RPC error: ``code`` and a one-line ``message``."""

    def __init__(self, code, message):
        super().__init__(code, message)
        self.code = code
        self.message = message


@implementer(IRpcMethods)
class RpcMethods:
    """The methods of the specification, bound to one node (an ``INodeApi``:
    its read side answers, its ``submit`` takes transactions)."""

    def __init__(self, node, stop=None):
        self.node = node
        self.queries = node.queries
        self._stop = stop
        self._handlers = {
            "getinfo": self.getinfo, "sendrawtransaction": self.sendrawtransaction,
            "gettransaction": self.gettransaction,
            "waitfortransaction": self.waitfortransaction, "getbalance": self.getbalance,
            "listunspent": self.listunspent, "getblockcount": self.getblockcount,
            "getblock": self.getblock, "getblockheader": self.getblockheader,
            "getfinalityproof": self.getfinalityproof,
            "getmempoolinfo": self.getmempoolinfo,
            "gettxoutsetinfo": self.gettxoutsetinfo, "getpeerinfo": self.getpeerinfo,
            "getmasternodes": self.getmasternodes, "stop": self.stop,
            "listbanned": self.listbanned, "setban": self.setban,
            "clearbanned": self.clearbanned, "help": self.help, "backup": self.backup,
        }
        if set(self._handlers) != set(CATALOG):
            raise RuntimeError("every method in the catalog needs a handler, and only those")

    def call(self, method, params):
        """Fire with the result of ``method`` on ``params`` (a list, a dict or
        None) or fail with :class:`RpcError`."""
        spec = CATALOG.get(method) if isinstance(method, str) else None
        if spec is None:
            return defer.fail(RpcError(METHOD_NOT_FOUND, f"method not found: {method}"))
        try:
            args = spec.bind(params)
        except ParamError as e:
            return defer.fail(RpcError(INVALID_PARAMS, f"{method}: {e}"))
        return defer.maybeDeferred(self._handlers[method], *args).addErrback(_translate)

    # -- methods (parameters already checked and converted) -----------------

    def getinfo(self):
        return self.queries.info()

    def sendrawtransaction(self, hex):  # noqa: A002 - the specification's name
        d = self.node.submit(decode_hex(hex))
        return d.addCallback(lambda txid: txid.hex())

    def gettransaction(self, txid):
        return self.queries.transaction_status(txid).addCallback(self._found, txid)

    def waitfortransaction(self, txid, timeout_s):
        return self.queries.wait_for_transaction(txid, timeout_s).addCallback(self._found,
                                                                               txid)

    def getbalance(self, address):
        return self.queries.balance(address)

    def listunspent(self, address):
        d = self.queries.unspent(address)
        return d.addCallback(lambda rows: [
            {"txid": op.txid.hex(), "vout": op.vout, "amount": amount, "status": status,
             "collateral": self.queries.is_collateral(op)}
            for op, amount, status in rows
        ])

    def getblockcount(self):
        return self.queries.height()

    def getblock(self, height_or_hash):
        return _block_found(self.queries.block(height_or_hash), height_or_hash,
                            self.queries.chain_base())

    def getblockheader(self, height_or_hash):
        return _block_found(self.queries.block_header(height_or_hash), height_or_hash,
                            self.queries.chain_base())

    def getfinalityproof(self, txid):
        d = self.queries.finality_proof(txid)
        return d.addCallback(lambda found: {"hex": found[0].encode().hex(),
                                            "block_height": found[1]})

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

    def setban(self, address, command, seconds):
        d = self._network().set_ban(address, seconds, remove=(command == "remove"))
        return d.addCallback(lambda _: None)

    def clearbanned(self):
        return self._network().clear_banned().addCallback(lambda _: None)

    def backup(self, directory):
        if directory is not None and not os.path.isabs(directory):
            raise RpcError(INVALID_PARAMS, "backup: directory must be an absolute path")
        d = self.node.backup(directory)

        def failed(failure):
            failure.trap(OSError)
            raise RpcError(INTERNAL_ERROR, f"backup failed: {failure.getErrorMessage()}")
        return d.addErrback(failed)

    def _found(self, result, txid):
        if result is not None:
            return result
        dropped = self.queries.drop_reason(txid)
        if dropped is not None:
            raise RpcError(NOT_FOUND, f"transaction not found: {txid.hex()} was dropped "
                                      f"here without a decision ({dropped}); it is not "
                                      "final: send it again, or ask another node")
        raise RpcError(NOT_FOUND, f"transaction not found: {txid.hex()}")

    def help(self, method):  # noqa: A003 - the specification's name
        if method is None:
            return [{"method": spec.name, "usage": spec.usage(), "help": spec.help}
                    for spec in METHODS]
        spec = CATALOG.get(method)
        if spec is None:
            raise RpcError(INVALID_PARAMS, f"help: no method named {method[:64]!r}")
        return spec.describe()




def _translate(failure):
    """Turn domain errors into RPC errors; anything else stays an internal error."""
    e = failure.value
    if isinstance(e, TxRejected):
        code = MISSING_INPUTS if e.code == "missing-input" else TX_REJECTED
        raise RpcError(code, str(e))
    if isinstance(e, AddressError | ProofUnavailable):
        raise RpcError(NOT_FOUND, str(e))
    return failure


def _block_found(result, height_or_hash, base=0):
    """``result``, or the not-found error naming the block asked for (and,
    below the snapshot a node joined from, saying so)."""
    if result is None:
        shown = height_or_hash.hex() if isinstance(height_or_hash, bytes) else height_or_hash
        if isinstance(height_or_hash, int) and 0 < height_or_hash < base:
            raise RpcError(NOT_FOUND, f"block not found: {shown}: this node joined from the "
                           f"snapshot at block {base} and holds no block below it")
        raise RpcError(NOT_FOUND, f"block not found: {shown}")
    return result
