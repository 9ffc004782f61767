"""Every RPC method's parameters, checked against its one declarative entry;
``help`` and doc/rpc.md from the same table; ``setban`` and stored bans."""

import os
import sqlite3

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.logger import LogLevel
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.api_support import LogCapture, post_rpc
from tests.support import start_node, sync_node
from timecoin.api.catalog import CATALOG, MAX_BAN_S, METHODS
from timecoin.api.reference import render
from timecoin.api.rpc import RpcError, RpcMethods
from timecoin.interfaces import IRpcMethods

INVALID_PARAMS = -32602
DOC = os.path.join(os.path.dirname(__file__), os.pardir, "doc", "rpc.md")

#: A value of the wrong JSON type for each kind of parameter (none accepts a dict).
WRONG = {"x": 1}
#: A value each parameter accepts.
VALID = {"hex": "00", "txid": "00" * 32, "timeout_s": 1, "address": "1.2.3.4",
         "height_or_hash": 0, "command": "add", "seconds": 5, "method": "getinfo"}


class SchemaTests(unittest.TestCase):
    def setUp(self):
        self.node = sync_node(self, Clock())
        self.rpc = RpcMethods(self.node)

    def refused(self, method, params):
        failure = self.failureResultOf(self.rpc.call(method, params), RpcError)
        self.assertEqual(failure.value.code, INVALID_PARAMS, (method, params))
        self.assertNotIn("\n", failure.value.message)
        return failure.value.message

    def test_provides_its_interface(self):
        verifyObject(IRpcMethods, self.rpc)

    def test_every_parameter_of_every_method_is_checked_before_it_runs(self):
        checked = 0
        for spec in METHODS:
            for index, param in enumerate(spec.params):
                # Earlier parameters valid, this one of the wrong type.
                params = {p.name: VALID[p.name] for p in spec.params[:index]}
                params[param.name] = WRONG
                message = self.refused(spec.name, params)
                self.assertIn(f"parameter {param.name} must be", message)
                self.assertTrue(message.startswith(spec.name + ": "), message)
                checked += 1
                if index == 0:
                    self.assertIn(param.name, self.refused(spec.name, [WRONG]))
            too_many = [None] * (len(spec.params) + 1)
            self.assertIn("at most", self.refused(spec.name, too_many))
            self.assertIn("unknown parameter", self.refused(spec.name, {"bogus": 1}))
        self.assertGreaterEqual(checked, 10)

    def test_required_parameters(self):
        for spec in METHODS:
            required = [p for p in spec.params if p.required]
            if required:
                message = self.refused(spec.name, [])
                self.assertIn(f"parameter {required[0].name} is required", message)
                message = self.refused(spec.name, [None] * len(spec.params))
                self.assertIn(f"parameter {required[0].name} is required", message)

    def test_ranges_and_formats(self):
        for method, params, name in (
                ("gettransaction", ["ab"], "txid"),
                ("gettransaction", ["zz" * 32], "txid"),
                ("waitfortransaction", ["00" * 32, -1], "timeout_s"),
                ("waitfortransaction", ["00" * 32, 601], "timeout_s"),
                ("waitfortransaction", ["00" * 32, float("nan")], "timeout_s"),
                ("waitfortransaction", ["00" * 32, True], "timeout_s"),
                ("getblock", [-1], "height_or_hash"),
                ("getblock", [1.5], "height_or_hash"),
                ("getblock", ["ab" * 31], "height_or_hash"),
                ("getbalance", [""], "address"),
                ("getbalance", ["x" * 129], "address"),
                ("help", [""], "method")):
            self.assertIn(f"parameter {name} must be", self.refused(method, params))

    def test_setban_validates_address_command_and_seconds(self):
        for params, name in (
                ([None, "add"], "address"), (["nohost"], "address"),
                (["127.0.0.1:99999"], "address"), (["1.2.3.4:x"], "address"),
                (["1.2.3.4.5"], "address"), ([12], "address"), (["[::1"], "address"),
                (["1.2.3.4", "frob"], "command"), (["1.2.3.4", 1], "command"),
                (["1.2.3.4", "add", 0], "seconds"), (["1.2.3.4", "add", -5], "seconds"),
                (["1.2.3.4", "add", float("inf")], "seconds"),
                (["1.2.3.4", "add", float("nan")], "seconds"),
                (["1.2.3.4", "add", MAX_BAN_S + 1], "seconds"),
                (["1.2.3.4", "add", "60"], "seconds")):
            message = self.refused("setban", params)
            self.assertIn(f"parameter {name}", message)

    def test_addresses_are_converted_to_the_ip(self):
        spec = CATALOG["setban"]
        for given, ip in (("1.2.3.4", "1.2.3.4"), ("1.2.3.4:8333", "1.2.3.4"),
                          ("[::1]:80", "::1"), ("::1", "::1"), ("[fe80::0001]", "fe80::1")):
            self.assertEqual(spec.bind([given])[0], ip)
        self.assertEqual(spec.bind({"address": "1.2.3.4", "seconds": 5}),
                         ["1.2.3.4", "add", 5])

    def test_help_lists_and_describes_from_the_table(self):
        listing = self.successResultOf(self.rpc.call("help", []))
        self.assertEqual([m["method"] for m in listing], [s.name for s in METHODS])
        self.assertIn("help", CATALOG)
        one = self.successResultOf(self.rpc.call("help", ["setban"]))
        self.assertEqual([p["name"] for p in one["params"]], ["address", "command", "seconds"])
        self.assertEqual(one["params"][1]["default"], "add")
        self.assertTrue(one["params"][0]["required"])
        self.assertEqual(one["usage"], "setban address [command] [seconds]")
        self.assertIn("result", one)
        self.assertIn("no method named", self.refused("help", ["nosuch"]))

    def test_the_reference_is_up_to_date(self):
        with open(DOC) as f:
            self.assertEqual(f.read(), render(),
                             "doc/rpc.md is stale: run python -m timecoin.api.reference")
        for spec in METHODS:
            self.assertIn(f"## {spec.name}\n", render())


class BanTests(unittest.TestCase):
    """``setban`` over HTTP on a real node, and bans stored by older versions."""

    @defer.inlineCallbacks
    def test_setban_over_http(self):
        log = LogCapture(self)
        node = yield start_node(self, reactor)
        for params in ([None], ["1.2.3.4", "add", "forever"], [["1.2.3.4"]], [{}]):
            status, answer = yield post_rpc(node, {"jsonrpc": "2.0", "id": 1,
                                                   "method": "setban", "params": params})
            self.assertEqual(answer["error"]["code"], INVALID_PARAMS, params)
        status, answer = yield post_rpc(node, {"jsonrpc": "2.0", "id": 1, "method": "setban",
                                               "params": ["[::1]:9", "add", 1e6]})
        self.assertIsNone(answer["result"])
        status, answer = yield post_rpc(node, {"jsonrpc": "2.0", "id": 2,
                                               "method": "listbanned"})
        self.assertEqual([b["address"] for b in answer["result"]], ["::1"])
        self.assertEqual(log.tracebacks(), [])

    @defer.inlineCallbacks
    def test_bad_rows_in_the_bans_table_are_dropped_at_start(self):
        node = yield start_node(self, reactor)
        datadir = node.datadir
        yield node.stopService()
        db = sqlite3.connect(os.path.join(datadir, "chain.sqlite3"))
        db.executemany("INSERT INTO bans (address, until, offences, reason) VALUES (?, ?, ?, ?)",
                       [(None, 4e9, 1, "null address"), ("10.0.0.1", float("inf"), 1, "inf"),
                        ("nohost", 4e9, 1, "a name"), ("10.0.0.2", 4e9, "x", "bad count"),
                        ("10.0.0.3", 4e9, 2, "good")])
        db.commit()
        db.close()
        log = LogCapture(self)
        node = yield start_node(self, reactor, datadir)
        yield node.peer_network.started
        status, answer = yield post_rpc(node, {"jsonrpc": "2.0", "id": 1,
                                               "method": "listbanned"})
        self.assertEqual(status, 200)
        self.assertEqual([(b["address"], b["offences"]) for b in answer["result"]],
                         [("10.0.0.3", 2)])
        warnings = [m for m in log.messages(LogLevel.warn) if "bans table" in m]
        self.assertEqual(len(warnings), 4)
        self.assertEqual(log.tracebacks(), [])
        yield node.stopService()
        db = sqlite3.connect(os.path.join(datadir, "chain.sqlite3"))
        rows = db.execute("SELECT address FROM bans").fetchall()
        db.close()
        self.assertEqual(rows, [("10.0.0.3",)])
