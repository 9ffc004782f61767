"""JSON-RPC 2.0 exactly, on a real node over 127.0.0.1: parse errors, invalid
requests, notifications, batches; none of it leaves a traceback in the log."""

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.api_support import LogCapture, post_rpc
from tests.support import start_node
from timecoin.api import jsonrpc

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND = -32700, -32600, -32601


def call(method, params=None, call_id=1):
    out = {"jsonrpc": "2.0", "method": method, "id": call_id}
    if params is not None:
        out["params"] = params
    return out


def notification(method, params=None):
    out = call(method, params)
    del out["id"]
    return out


class FramingTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.log = LogCapture(self)
        self.node = yield start_node(self, reactor)

    def tearDown(self):
        self.assertEqual(self.log.tracebacks(), [])

    @defer.inlineCallbacks
    def assertError(self, body, code, call_id=None):
        status, answer = yield post_rpc(self.node, body)
        self.assertEqual(status, 200, body)
        self.assertEqual(answer["error"]["code"], code, answer)
        self.assertEqual(answer["id"], call_id, answer)
        self.assertNotIn("\n", answer["error"]["message"])
        return answer["error"]["message"]

    @defer.inlineCallbacks
    def test_deep_nesting_is_a_parse_error(self):
        yield self.assertError(b"[" * 1000 + b"]" * 1000, PARSE_ERROR)
        yield self.assertError(b'{"a":' * 5000 + b"1" + b"}" * 5000, PARSE_ERROR)
        yield self.assertError(b"[" * 200_000, PARSE_ERROR)
        # Brackets inside strings do not count; 32 levels are accepted.
        status, answer = yield post_rpc(self.node, call("help", ["[" * 50]))
        self.assertEqual(answer["error"]["code"], -32602)
        nested = b'{"jsonrpc": "2.0", "id": 1, "method": "getinfo", "params": {"x": ' \
            + b"[" * 29 + b"]" * 29 + b"}}"
        status, answer = yield post_rpc(self.node, nested)
        self.assertIn("unknown parameter", answer["error"]["message"])

    @defer.inlineCallbacks
    def test_non_standard_numbers_are_refused(self):
        for text in (b"NaN", b"Infinity", b"-Infinity", b"1e400"):
            body = b'{"jsonrpc": "2.0", "id": 1, "method": "setban", "params": ' \
                + b'["10.0.0.1", "add", ' + text + b"]}"
            message = yield self.assertError(body, PARSE_ERROR)
            self.assertIn(text.decode().lstrip("-"), message)
        self.assertEqual(self.node.peer_network.list_banned(), [])

    @defer.inlineCallbacks
    def test_not_json(self):
        for body in (b"{not json", b"\xff\xfe{}", b"", b'"unterminated', b"[}"):
            yield self.assertError(body, PARSE_ERROR)

    @defer.inlineCallbacks
    def test_invalid_requests(self):
        yield self.assertError({"jsonrpc": "2.0", "method": 1, "id": 1}, INVALID_REQUEST, 1)
        yield self.assertError({"jsonrpc": "2.0", "method": "getinfo", "id": {}},
                               INVALID_REQUEST)
        yield self.assertError({"jsonrpc": "2.0", "method": "getinfo", "id": [1]},
                               INVALID_REQUEST)
        yield self.assertError({"jsonrpc": "2.0", "method": "getinfo", "id": True},
                               INVALID_REQUEST)
        yield self.assertError({"method": "getinfo", "id": 7}, INVALID_REQUEST, 7)
        yield self.assertError({"jsonrpc": "1.0", "method": "getinfo", "id": 7},
                               INVALID_REQUEST, 7)
        yield self.assertError({"jsonrpc": "2.0", "method": "getinfo", "params": 3, "id": 7},
                               INVALID_REQUEST, 7)
        yield self.assertError([], INVALID_REQUEST)
        yield self.assertError(5, INVALID_REQUEST)
        yield self.assertError(call("nosuchmethod"), METHOD_NOT_FOUND, 1)
        # Strings, numbers and null are ids, echoed as given.
        for call_id in ("abc", 3.5, None, -2):
            status, answer = yield post_rpc(self.node, call("getblockcount", call_id=call_id))
            self.assertEqual((answer["id"], answer["result"]), (call_id, 0))

    @defer.inlineCallbacks
    def test_a_batch_of_invalid_calls_answers_each(self):
        status, answer = yield post_rpc(self.node, [1, 2, 3])
        self.assertEqual([a["error"]["code"] for a in answer], [INVALID_REQUEST] * 3)

    @defer.inlineCallbacks
    def test_notifications_run_and_get_no_reply(self):
        status, answer = yield post_rpc(self.node, notification("setban", ["10.0.0.9"]))
        self.assertEqual((status, answer), (204, None))
        banned = self.node.peer_network.list_banned()
        self.assertEqual([b["address"] for b in banned], ["10.0.0.9"])
        # A failing notification gets no reply either.
        status, answer = yield post_rpc(self.node, notification("setban", [None]))
        self.assertEqual((status, answer), (204, None))
        status, answer = yield post_rpc(self.node, [notification("getinfo"),
                                                    notification("nosuchmethod")])
        self.assertEqual((status, answer), (204, None))

    @defer.inlineCallbacks
    def test_batch_replies_leave_notifications_out(self):
        status, answer = yield post_rpc(self.node, [
            notification("clearbanned"), call("getblockcount", call_id="a"),
            {"jsonrpc": "2.0", "method": 1, "id": "b"}, notification("getinfo"),
            call("gettransaction", ["00" * 32], call_id="c"),
        ])
        self.assertEqual(status, 200)
        self.assertEqual([a["id"] for a in answer], ["a", "b", "c"])
        self.assertEqual(answer[0]["result"], 0)
        self.assertEqual(answer[1]["error"]["code"], INVALID_REQUEST)
        self.assertEqual(answer[2]["error"]["code"], -5)

    @defer.inlineCallbacks
    def test_a_batch_that_waits_keeps_its_order(self):
        status, answer = yield post_rpc(self.node, [
            call("waitfortransaction", ["11" * 32, 0.01], call_id=1),
            notification("waitfortransaction", ["22" * 32, 0.01]),
            call("getblockcount", call_id=2)])
        self.assertEqual([a["id"] for a in answer], [1, 2])
        self.assertEqual(answer[0]["error"]["code"], -5)


class EncodingTests(unittest.TestCase):
    def test_nesting_scan(self):
        self.assertFalse(jsonrpc.nesting_exceeds(b"[" * 32 + b"]" * 32))
        self.assertTrue(jsonrpc.nesting_exceeds(b"[" * 33 + b"]" * 33))
        self.assertFalse(jsonrpc.nesting_exceeds(b'["' + b"[" * 100 + b'"]'))
        self.assertFalse(jsonrpc.nesting_exceeds(b'["\\"' + b"[" * 100 + b'"]'))
        self.assertTrue(jsonrpc.nesting_exceeds(b"[{]}" * 20))
        self.assertFalse(jsonrpc.nesting_exceeds(b"[{]}"))  # left to json.loads
        self.assertTrue(jsonrpc.nesting_exceeds(b"[" * 33))
        self.assertFalse(jsonrpc.nesting_exceeds(b'{"a": [1, {"b": []}], "c": {}}'))

    def test_results_are_never_non_standard_json(self):
        data, problem = jsonrpc.encode_response(jsonrpc.result(1, {"x": float("inf")}))
        self.assertIsNotNone(problem)
        self.assertNotIn(b"Infinity", data)
        self.assertEqual(jsonrpc.decode(data)["error"]["code"], -32603)
        with self.assertRaises(ValueError):
            jsonrpc.encode(float("nan"))
