"""A fake peer-network host and signed test transactions, for tests and the wire benchmark."""

import hashlib

from twisted.internet import defer
from zope.interface import implementer

from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import DEVNET
from timecoin.ledger.tx import OutPoint, TxRejected, check_stateless, decode_tx, sign_transfer
from timecoin.p2p.host import IPeerHost, SynchronousDatabase

GENESIS = hashlib.blake2b(b"test genesis", digest_size=32).digest()

@implementer(IPeerHost)
class FakePeerHost:
    """An in-memory node: accepts any well-formed, well-signed transaction."""

    def __init__(self, network=DEVNET, genesis_hash=GENESIS, identity=None, db_path=":memory:"):
        self.network = network
        self.genesis_hash = genesis_hash
        self.identity = identity or PrivateKey.generate()
        self.version = "0.1.0-test"
        self.height = 7
        self.db = SynchronousDatabase(db_path)
        self.txs = {}
        self.received = []
        self.on_accept = []
        #: Public keys :meth:`is_protected_peer` protects from eviction.
        self.protected = set()

    def best_height(self):
        return self.height

    def receive_tx(self, raw_bytes, peer_address):
        try:
            tx = decode_tx(raw_bytes)
            check_stateless(tx, self.network.network_id)
        except TxRejected as e:
            return defer.fail(e)
        if tx.txid in self.txs:
            return defer.fail(TxRejected("already-known"))
        self.txs[tx.txid] = tx.raw
        self.received.append((tx.txid, peer_address))
        for callback in self.on_accept:
            callback(tx)
        return defer.succeed(tx.txid)

    def have_tx(self, txid):
        return txid in self.txs

    def get_tx_raw(self, txid):
        return self.txs.get(txid)

    def run_db(self, fn):
        return self.db.run_db(fn)

    def is_protected_peer(self, pubkey):
        return pubkey in self.protected


def make_tx(n, network_id=DEVNET.network_id):
    """A distinct, correctly signed transfer (its inputs need not exist)."""
    key = PrivateKey.devnet(0)
    prevout = OutPoint(hashlib.blake2b(b"prev %d" % n, digest_size=32).digest(), 0)
    return sign_transfer(key, [prevout], [(1000 + n, key.key_hash)], network_id)
