"""Every component provides its Interface."""

import os

from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface.verify import verifyClass, verifyObject

from tests.support import make_datadir, sync_node
from timecoin.chain import GenesisChain
from timecoin.finality_local import LocalFinality
from timecoin.finality_snowball import SnowballFinality
from timecoin.genesis import make_genesis
from timecoin.interfaces import (
    IBlockConsensus,
    IFinality,
    IMempool,
    IPeerNetwork,
    IStorage,
    IUtxoState,
)
from timecoin.mempool import Mempool
from timecoin.networks import DEVNET
from timecoin.node import Node
from timecoin.p2p.host import IPeerHost
from timecoin.p2p.service import PeerNetworkService
from timecoin.storage import Storage
from timecoin.utxo import UtxoSet


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
