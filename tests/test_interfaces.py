"""Every component provides its Interface, fakes included."""

import os

from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface.verify import verifyClass, verifyObject

from tests.support import make_datadir, sync_node
from timecoin.finality.blocks import BlockService
from timecoin.finality.catchup import FinalitySync
from timecoin.finality.deadlines import Deadlines
from timecoin.finality.local import LocalFinality
from timecoin.finality.snowball import SnowballFinality
from timecoin.interfaces import (
    IBlockApplyHost,
    IBlockConsensus,
    IBlockHost,
    IBlockLedger,
    IBlockService,
    ICatchupHost,
    IDaemonNode,
    IDeadlines,
    IFinality,
    IFinalityEvents,
    IFinalityHost,
    IFinalityProofs,
    IFinalitySync,
    IJournal,
    IListeningService,
    IMempool,
    INodeApi,
    INodeComponents,
    INodeMetrics,
    INodeQueries,
    IPeer,
    IPeerMessaging,
    IPeerNetwork,
    ISignatureVerifier,
    IStorage,
    IStorageCheck,
    IUtxoFlusher,
    IUtxoState,
)
from timecoin.ledger.blockchain import BlockChain
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.mempool import Mempool
from timecoin.ledger.networks import DEVNET
from timecoin.ledger.utxo import UtxoSet
from timecoin.node.assembly import ListenerService
from timecoin.node.blocks import NodeBlocks
from timecoin.node.service import Node
from timecoin.node.verify import InlineVerifier, ProcessVerifier
from timecoin.p2p.host import IPeerHost, ObserverHost
from timecoin.p2p.protocol import PeerProtocol
from timecoin.p2p.service import PeerNetworkService, PeerSummary
from timecoin.storage.background import StorageCheck
from timecoin.storage.journal import JournalWriter
from timecoin.storage.store import Storage
from timecoin.testing.blocks import FakeBlockHost, Mesh
from timecoin.testing.fakes import KnownTransactions, ManualFinality, SyncStorage
from timecoin.testing.peers import FakePeerHost


class InterfaceTests(unittest.TestCase):
    def test_sans_io_cores(self):
        clock = Clock()
        verifyObject(IUtxoState, UtxoSet(clock))
        verifyObject(IMempool, Mempool(clock))
        verifyObject(IFinality, LocalFinality(clock))
        verifyClass(IFinality, SnowballFinality)
        verifyObject(IDeadlines, Deadlines(clock, lambda item: None, lambda item: False))

    def test_chain_and_storage(self):
        verifyObject(IBlockConsensus, BlockChain(make_genesis(DEVNET)))
        storage = Storage(Clock(), os.path.join(make_datadir(self), "db"))
        verifyObject(IStorage, storage)
        verifyObject(IJournal, JournalWriter(Clock(), storage))

    def test_verifiers(self):
        verifyObject(ISignatureVerifier, InlineVerifier())
        verifyObject(ISignatureVerifier, ProcessVerifier(Clock(), 1))

    def test_node_provides_what_its_collaborators_ask(self):
        node = sync_node(self, Clock())
        for interface in (IPeerHost, IFinalityHost, ICatchupHost, INodeApi, INodeComponents,
                          IDaemonNode, IBlockApplyHost):
            verifyObject(interface, node)
            verifyClass(interface, Node)
        verifyObject(INodeQueries, node.queries)
        verifyObject(INodeMetrics, node.metrics)
        verifyObject(IFinalityEvents, node.events)
        verifyObject(IJournal, node.journal)
        verifyObject(IUtxoFlusher, node.flusher)
        verifyObject(IStorageCheck, node.storage_check)
        verifyObject(IStorageCheck, StorageCheck(Clock(), node.storage.path))
        verifyObject(IBlockLedger, node.block_ledger)

    def test_block_service_and_its_host(self):
        node = sync_node(self, Clock())
        host = NodeBlocks(Clock(), node.chain, node.block_ledger, node.state, node.journal,
                          node.storage, node.finality, node.proofs,
                          node.mempool)
        verifyObject(IBlockHost, host)
        verifyObject(IFinalityProofs, node.proofs)
        service = BlockService(Clock(), host, DEVNET.network_id, 2, PrivateKey.devnet(0))
        verifyObject(IBlockService, service)
        verifyObject(IBlockHost, FakeBlockHost(DEVNET.network_id, {b"k" * 32: 1}))
        verifyObject(IPeerMessaging, Mesh(Clock(), [b"k" * 32]).endpoints[0])

    def test_network_side(self):
        node = sync_node(self, Clock())
        network = PeerNetworkService(Clock(), node)
        verifyObject(IPeerNetwork, network)
        verifyObject(IPeer, PeerSummary(1, b"k" * 32, "127.0.0.1:1", "inbound"))
        verifyClass(IPeer, PeerProtocol)
        verifyObject(IPeerHost, ObserverHost(DEVNET, b"g" * 32, "test"))
        verifyObject(IFinalitySync, FinalitySync(Clock(), node, node.finality, [], b"k" * 32))
        verifyObject(IListeningService, ListenerService(Clock(), "tcp:0", None, "API"))

    def test_fakes_implement_what_they_claim(self):
        verifyObject(IFinality, ManualFinality())
        verifyObject(IFinalityHost, KnownTransactions())
        verifyObject(IPeerHost, FakePeerHost())
        storage = SyncStorage(Clock(), os.path.join(make_datadir(self), "db"))
        verifyObject(IStorage, storage)
