"""The per-peer txid budget of ``inv`` announcements, on a memory node and clock.

A peer may announce ``inv_txid_rate`` txids a second (burst 2x); the excess
is dropped unrequested and counted, the peer is not banned for it, and the
announcements of other peers are requested as before. When the in-flight table
is full, the peer with most outstanding requests loses its oldest.
"""

from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.p2p_fakes import make_tx
from tests.test_p2p_limits import ReadyPeers
from tests.test_p2p_states import written
from timecoin.interfaces import IPeerNetwork
from timecoin.ledger.encoding import DecodeError
from timecoin.ledger.keys import PrivateKey
from timecoin.p2p import messages as m
from timecoin.p2p.config import INV_TXIDS_PER_MESSAGE, P2PConfig
from timecoin.p2p.framing import encode_frame
from timecoin.p2p.inflight import InFlightTable
from timecoin.p2p.ratelimit import PeerRateLimits
from timecoin.p2p.util import BoundedSet


def random_txids(tag, count=m.MAX_INV):
    return tuple(tag.to_bytes(4, "big") + k.to_bytes(28, "big") for k in range(count))


def requested(messages):
    return [txid for message in messages if message.KIND == m.GETDATA for txid in message.txids]


class TxidBudget(unittest.TestCase):
    def test_default_scales_with_the_message_rate(self):
        self.assertEqual(P2PConfig().inv_txid_rate, INV_TXIDS_PER_MESSAGE * 1000)
        self.assertEqual(P2PConfig(rate_limit_tx=5000).inv_txid_rate, 10 * 5000)
        self.assertEqual(P2PConfig(rate_limit_inv_txids=7).inv_txid_rate, 7)

    def test_allows_the_burst_then_the_rate_and_drops_the_rest(self):
        limits = PeerRateLimits(P2PConfig(rate_limit_inv_txids=100))
        self.assertEqual(limits.take_txids(0.0, 150), 150)  # burst: 200
        self.assertEqual(limits.take_txids(0.0, 100), 50)  # the first 50 of these
        self.assertEqual(limits.take_txids(0.0, 10), 0)
        self.assertEqual(limits.take_txids(0.5, 60), 50)  # 100/s for half a second
        self.assertEqual(limits.take_txids(10.0, 1000), 200)  # refilled to the burst only

    def test_messages_are_counted_apart_from_txids(self):
        limits = PeerRateLimits(P2PConfig(rate_limit_inv_txids=10))
        self.assertEqual(limits.take_txids(0.0, 1000), 20)
        self.assertIsNone(limits.check(m.INV, 0.0))  # the message bucket is untouched


class InvOverBudget(ReadyPeers):
    config = P2PConfig(max_per_ip=8, ping_interval=3600.0, rate_limit_inv_txids=2000,
                       max_in_flight_per_peer=100_000)

    def stats(self):
        return {name: samples[0][1] for name, _, _, samples in self.node.service.statistics()
                if name in ("timecoin_peer_inv_txids_dropped_total",
                            "timecoin_peer_receive_holds_total")}

    def test_excess_dropped_unrequested_counted_and_not_banned(self):
        service = self.node.service
        self.assertTrue(verifyObject(IPeerNetwork, service))
        flooder = self.ready_peer()
        before = len(written(flooder))
        # 10,000 txids in one read: the burst is 4,000.
        flooder.dataReceived(b"".join(encode_frame(m.Inv(random_txids(n))) for n in range(10)))
        asked = requested(written(flooder)[before:])
        self.assertEqual(asked, list(random_txids(0) + random_txids(1)
                                     + random_txids(2) + random_txids(3)))
        # The fifth inv is dropped, and the connection reads no more for now:
        # the rest waits (in TCP, on the sender's side).
        self.assertEqual(self.stats(), {"timecoin_peer_inv_txids_dropped_total": 1000,
                                        "timecoin_peer_receive_holds_total": 1})
        self.assertNotIn(random_txids(4)[0], flooder.known_inventory)
        self.assertTrue(flooder.paused)
        self.assertFalse(flooder.closing)
        # Reading resumes once the budget holds a full inv (1,000 at 2,000/s):
        # the sixth inv is requested, the seventh dropped, and reading stops again.
        self.node.reactor.advance(0.4)
        self.assertTrue(flooder.paused)
        before = len(written(flooder))
        self.node.reactor.advance(0.1)
        self.assertEqual(requested(written(flooder)[before:]), list(random_txids(5)))
        self.assertEqual(self.stats(), {"timecoin_peer_inv_txids_dropped_total": 2000,
                                        "timecoin_peer_receive_holds_total": 2})
        self.assertTrue(flooder.paused)
        self.assertFalse(flooder.closing)

    def test_part_of_an_inv_within_the_budget_is_requested(self):
        flooder = self.ready_peer()
        for n in range(4):
            flooder.dataReceived(encode_frame(m.Inv(random_txids(n))))
        self.node.reactor.advance(0.25)  # 500 txids of budget
        before = len(written(flooder))
        flooder.dataReceived(encode_frame(m.Inv(random_txids(20))))
        self.assertEqual(requested(written(flooder)[before:]), list(random_txids(20)[:500]))
        self.assertEqual(self.stats(), {"timecoin_peer_inv_txids_dropped_total": 500,
                                        "timecoin_peer_receive_holds_total": 1})
        # Held until 1,000 txids of budget: half a second at 2,000/s.
        self.node.reactor.advance(0.49)
        self.assertTrue(flooder.paused)
        self.node.reactor.advance(0.01)
        self.assertFalse(flooder.paused)

    def test_a_closed_connection_is_not_resumed(self):
        flooder = self.ready_peer()
        flooder.dataReceived(b"".join(encode_frame(m.Inv(random_txids(n))) for n in range(5)))
        self.assertTrue(flooder.paused)
        holds = [call for call in self.node.reactor.getDelayedCalls()
                 if call.func == flooder._end_hold]
        self.assertEqual(len(holds), 1)
        flooder.drop("test")
        flooder.connectionLost(None)
        self.assertFalse(holds[0].active())  # the hold was cancelled with the connection

    def test_other_peers_are_still_served_while_one_is_over_budget(self):
        flooder = self.ready_peer()
        for n in range(10):
            flooder.dataReceived(encode_frame(m.Inv(random_txids(n))))
        self.identity = PrivateKey.generate()
        honest = self.ready_peer(40001)
        before = len(written(honest))
        txid = make_tx(1).txid
        honest.dataReceived(encode_frame(m.Inv((txid,))))
        self.assertEqual(requested(written(honest)[before:]), [txid])

    def test_a_peer_with_no_room_in_flight_costs_no_lookups(self):
        service = self.node.service
        relay = service.relay
        relay.in_flight.per_peer = 10
        flooder = self.ready_peer()
        lookups = []
        self.patch(self.node.host, "have_tx", lambda txid: lookups.append(txid) or False)
        flooder.dataReceived(encode_frame(m.Inv(random_txids(0))))
        # Ten requested: lookups stop once the peer's room is filled.
        self.assertEqual(len(lookups), 10)
        self.assertEqual(relay.in_flight.outstanding(flooder.peer_id), 10)
        self.assertEqual(relay.in_flight.refused, m.MAX_INV - 10)
        flooder.dataReceived(encode_frame(m.Inv(random_txids(1))))
        self.assertEqual(len(lookups), 10)
        self.assertEqual(relay.in_flight.refused, 2 * m.MAX_INV - 10)


class Containers(unittest.TestCase):
    def test_bounded_set_update_keeps_the_newest(self):
        known = BoundedSet(5)
        known.update([1, 2, 3])
        known.update([3, 4, 5, 6])
        self.assertEqual(len(known), 5)
        self.assertNotIn(1, known)
        self.assertEqual([i in known for i in range(2, 7)], [True] * 5)
        known.add(7)
        self.assertEqual(len(known), 5)
        known.update(range(100, 120))
        self.assertEqual(len(known), 5)
        self.assertEqual(sum(i in known for i in range(100, 120)), 5)

    def test_txid_lists_decode_whole_and_refuse_truncation(self):
        for count in (0, 1, 7, m.MAX_INV):
            txids = random_txids(3, count)
            frame = encode_frame(m.GetData(txids))
            self.assertEqual(m.decode_message(frame[5:]), m.GetData(txids))
        body = encode_frame(m.Inv(random_txids(4, 3)))[5:]
        with self.assertRaises(DecodeError):
            m.decode_message(body[:-1])
        with self.assertRaises(DecodeError):
            m.decode_message(body + b"\x00")


class InFlightWhenFull(unittest.TestCase):
    def test_the_peer_with_most_outstanding_loses_its_oldest_request(self):
        table = InFlightTable(capacity=10, per_peer=8)
        flooded = [bytes([1, k]) for k in range(8)]
        self.assertEqual(table.request(flooded, peer_id=1, now=0.0, deadline=30.0), flooded)
        self.assertEqual(table.request([b"h1", b"h2"], peer_id=2, now=1.0, deadline=31.0),
                         [b"h1", b"h2"])
        # Full: a third peer's requests push out peer 1's oldest, not peer 2's.
        self.assertEqual(table.request([b"x1", b"x2", b"x3"], peer_id=3, now=2.0,
                                       deadline=32.0), [b"x1", b"x2", b"x3"])
        self.assertEqual(table.forgotten, 3)
        self.assertEqual([txid in table for txid in flooded], [False] * 3 + [True] * 5)
        self.assertEqual((table.outstanding(1), table.outstanding(2), table.outstanding(3)),
                         (5, 2, 3))
        self.assertIn(b"h1", table)
        # Forgotten requests may be asked again, and expiry still goes oldest first.
        self.assertEqual(table.request([flooded[0]], peer_id=2, now=3.0, deadline=33.0),
                         [flooded[0]])
        table.expire(31.0)
        self.assertEqual(len(table), 4)  # peer 3's three and the re-request
        self.assertEqual((table.outstanding(1), table.outstanding(2)), (0, 1))
        table.delivered(b"x2")
        self.assertEqual(table.outstanding(3), 2)
