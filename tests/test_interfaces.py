"""Every component provides its Interface."""

import os

from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface.verify import verifyClass, verifyObject

from tests.support import make_datadir, sync_node
from timecoin.finality.local import LocalFinality
from timecoin.finality.snowball import SnowballFinality
from timecoin.interfaces import (
    IBlockConsensus,
    IFinality,
    IMempool,
    IPeerNetwork,
    IStorage,
    IUtxoState,
)
from timecoin.ledger.chain import GenesisChain
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.mempool import Mempool
from timecoin.ledger.networks import DEVNET
from timecoin.ledger.utxo import UtxoSet
from timecoin.node.service import Node
from timecoin.p2p.host import IPeerHost
from timecoin.p2p.service import PeerNetworkService
from timecoin.storage.store import Storage


class InterfaceTests(unittest.TestCase):
    def test_sans_io_cores(self):
        clock = Clock()
        verifyObject(IUtxoState, UtxoSet(clock))
        verifyObject(IMempool, Mempool(clock))
        verifyObject(IFinality, LocalFinality(clock))
        verifyClass(IFinality, SnowballFinality)

    def test_chain_and_storage(self):
        verifyObject(IBlockConsensus, GenesisChain(make_genesis(DEVNET)))
        verifyObject(IStorage, Storage(Clock(), os.path.join(make_datadir(self), "db")))

    def test_node_is_a_peer_host_and_its_network_a_peer_network(self):
        node = sync_node(self, Clock())
        verifyObject(IPeerHost, node)
        verifyClass(IPeerHost, Node)
        verifyObject(IPeerNetwork, PeerNetworkService(Clock(), node))
