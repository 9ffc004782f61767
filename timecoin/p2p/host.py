"""What the peer network needs from the node that hosts it."""

import sqlite3

from twisted.internet import defer
from zope.interface import Attribute, Interface, implementer

from timecoin.ledger.keys import PrivateKey
from timecoin.storage.peer_tables import create_peer_tables


class IPeerHost(Interface):
    """The node as the peer network sees it."""

    network = Attribute("The timecoin.ledger.networks.Network this node is on.")
    genesis_hash = Attribute("The 32-byte hash of the genesis block.")
    identity = Attribute("The node's timecoin.ledger.keys.PrivateKey (its peer identity).")
    version = Attribute("The software version string, sent as the user agent.")

    def best_height():
        """The best block height (int)."""

    def receive_tx(raw_bytes, peer_address):
        """Offer a transaction heard from a peer.

        Returns a Deferred firing with the txid if accepted, or failing with
        ``timecoin.ledger.tx.TxRejected``; the codes ``malformed``, ``too-large``,
        ``bad-signature`` and ``wrong-network`` count as misbehaviour.
        """

    def have_tx(txid):
        """True if the node already holds (or has decided) ``txid``."""

    def get_tx_raw(txid):
        """The raw bytes of ``txid``, or None."""

    def run_db(fn):
        """Run ``fn(conn)`` on the node's database writer thread; a Deferred of its result."""

    def is_protected_peer(pubkey):
        """True if the peer authenticated as ``pubkey`` must never be evicted
        to make room for another (a masternode that votes)."""


class SynchronousDatabase:
    """``run_db`` over one SQLite connection, run at once on the calling thread.

    For programs that use the peer network without a node database (and for
    tests); ``path`` defaults to a private in-memory database. It holds the
    ``peers`` and ``bans`` tables only.
    """

    def __init__(self, path=":memory:"):
        self.conn = sqlite3.connect(path)
        create_peer_tables(self.conn)

    def run_db(self, fn):
        return defer.maybeDeferred(fn, self.conn)

    def close(self):
        self.conn.close()


@implementer(IPeerHost)
class ObserverHost:
    """An ``IPeerHost`` for programs that only listen to a network: it has a
    fresh identity, stores nothing, and claims every transaction so that only
    announcements (and subscribed events) arrive, never the transactions."""

    def __init__(self, network, genesis_hash, version):
        self.network = network
        self.genesis_hash = genesis_hash
        self.identity = PrivateKey.generate()
        self.version = version
        self._db = SynchronousDatabase()

    def best_height(self):
        return 0

    def receive_tx(self, raw, peer_address):
        return defer.succeed(None)

    def have_tx(self, txid):
        return True

    def get_tx_raw(self, txid):
        return None

    def run_db(self, fn):
        return self._db.run_db(fn)

    def is_protected_peer(self, pubkey):
        return False
