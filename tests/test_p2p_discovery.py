"""Discovery: a node dials addresses it learned from its peers."""

import dataclasses

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.p2p_fakes import TEST_CONFIG, node_address, start_node
from timecoin.testing.waiting import wait_until

FAST = dataclasses.replace(TEST_CONFIG, discovery_interval=0.05, target_outbound=4)


class DiscoveryTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_nodes_sharing_one_seed_find_each_other(self):
        hub = yield start_node(self, config=FAST)
        b = yield start_node(self, seeds=[node_address(hub)], config=FAST)
        yield wait_until(reactor, lambda: hub.peer_count() == 1)
        c = yield start_node(self, seeds=[node_address(hub)], config=FAST)
        # c learns b's address from the hub (getaddr) and dials it
        yield wait_until(reactor, lambda: b.peer_count() == 2 and c.peer_count() == 2, timeout=10)
        self.assertIn(node_address(b), c.connected_addresses())
        self.assertGreaterEqual(c.discovery.attempts, 1)

    @defer.inlineCallbacks
    def test_own_address_is_not_dialled_again(self):
        hub = yield start_node(self, config=FAST)
        b = yield start_node(self, seeds=[node_address(hub)], config=FAST)
        yield wait_until(reactor, lambda: hub.peer_count() == 1)
        # b is told its own address: dialling it is refused as a self-connection once
        b.addresses.add([(node_address(b), 1.0)])
        yield wait_until(reactor, lambda: node_address(b) in b.discovery.self_addresses, timeout=10)
        attempts = b.discovery.attempts
        for _ in range(5):
            b.discovery.tick()
        self.assertEqual(b.discovery.attempts, attempts)
