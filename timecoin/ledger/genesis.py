"""Each network's genesis: the outputs it starts with and its first masternodes.

Genesis masternodes are registered by collateral like any other: a second
genesis transaction creates one Bronze collateral output per masternode,
locked to the masternode's own key, and the genesis names it. Spending it
deregisters the masternode, as for any registration.

Devnet's genesis funds the development keys 0..DEVNET_FUNDED_KEYS-1 (public
knowledge: ``timecoin devnet-key N`` writes one) and registers the first
``masternodes`` of them as Bronze masternodes; ``timecoin devnet --nodes N``
asks for N. Testnet's genesis funds the ten testnet faucet keys the same way,
from a published seed, and registers the first three as Bronze. Mainnet's
genesis allocates nothing and registers no masternode: its masternodes
register by collateral once coins exist, which needs a launch allocation that
is not decided yet (doc/masternodes.md).
"""

import hashlib
import struct
from dataclasses import dataclass

from timecoin.ledger.encoding import Writer
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import COIN, DEVNET, MAINNET, TESTNET
from timecoin.ledger.registration import BRONZE
from timecoin.ledger.registry import MasternodeRegistry
from timecoin.ledger.tx import KIND_GENESIS, OutPoint, Transaction, TxOut

DEVNET_FUNDED_KEYS = 100
DEVNET_KEY_AMOUNT = 100_000 * COIN
GENESIS_TIME = {DEVNET.name: 1_767_225_600, TESTNET.name: 1_767_225_600,
                MAINNET.name: 1_798_761_600}


@dataclass(frozen=True)
class GenesisRegistration:
    """A masternode the genesis registers, with its collateral output."""

    pubkey: bytes
    tier: str
    collateral: OutPoint
    reward_key_hash: bytes


@dataclass(frozen=True)
class Genesis:
    """The genesis of one network: its transactions, registrations and block hash."""

    network: object
    txs: tuple
    registrations: tuple  # GenesisRegistration
    timestamp: int

    @property
    def masternodes(self):
        """The public keys of the genesis masternodes, in registration order."""
        return tuple(r.pubkey for r in self.registrations)

    @property
    def header(self):
        w = Writer().u8(2).u8(self.network.network_id).u32(0).fixed(bytes(32), 32)
        w.u64(self.timestamp).fixed(self._tx_root(), 32)
        w.count(len(self.registrations), 10_000)
        for r in self.registrations:
            w.fixed(r.pubkey, 32).varbytes(r.tier.encode(), 16)
            w.fixed(r.collateral.txid, 32).u32(r.collateral.vout).fixed(r.reward_key_hash, 20)
        return w.getvalue()

    @property
    def hash(self):
        return hashlib.blake2b(self.header, digest_size=32).digest()

    def _tx_root(self):
        h = hashlib.blake2b(digest_size=32)
        for tx in self.txs:
            h.update(tx.txid)
        return h.digest()

    @property
    def total_supply(self):
        return sum(tx.output_total for tx in self.txs)

    def block(self):
        """The genesis block as ``getblock`` reports it."""
        return {
            "height": 0,
            "hash": self.hash.hex(),
            "previous_block_hash": None,
            "time": self.timestamp,
            "txids": [tx.txid.hex() for tx in self.txs],
            "masternodes": [pk.hex() for pk in self.masternodes],
            "masternode_set_hash": self.masternode_set_hash().hex(),
        }


    def masternode_set_hash(self):
        """The hash of the active set the genesis starts (it signs block 1)."""
        return MasternodeRegistry.from_genesis(self).masternode_set_hash()


def _funding_tx(network, keys, amount):
    outputs = tuple(TxOut(amount, k.key_hash) for k in keys)
    payload = b"timecoin genesis " + network.name.encode()
    return Transaction((), outputs, network.network_id, KIND_GENESIS, payload)


def testnet_key(index):
    """Testnet faucet key ``index`` (published, like devnet's)."""
    seed = hashlib.blake2b(b"timecoin testnet faucet " + struct.pack("<I", index),
                           digest_size=32).digest()
    return PrivateKey(seed)


def _collateral_tx(network, keys):
    """One Bronze collateral output per genesis masternode, locked to its own key."""
    outputs = tuple(TxOut(BRONZE.collateral, k.key_hash) for k in keys)
    payload = b"timecoin genesis collateral " + network.name.encode()
    return Transaction((), outputs, network.network_id, KIND_GENESIS, payload)


def _with_masternodes(network, funding, masternode_keys):
    collateral = _collateral_tx(network, masternode_keys)
    registrations = tuple(
        GenesisRegistration(k.pubkey, BRONZE.name, OutPoint(collateral.txid, i), k.key_hash)
        for i, k in enumerate(masternode_keys))
    return Genesis(network, (funding, collateral), registrations, GENESIS_TIME[network.name])


def make_genesis(network, masternodes=1):
    """The genesis of ``network``; on devnet, the first ``masternodes`` dev keys
    are Bronze masternodes."""
    if network is DEVNET:
        keys = [PrivateKey.devnet(i) for i in range(max(DEVNET_FUNDED_KEYS, masternodes))]
        return _with_masternodes(network, _funding_tx(network, keys, DEVNET_KEY_AMOUNT),
                                 keys[:masternodes])
    if network is TESTNET:
        keys = [testnet_key(i) for i in range(10)]
        return _with_masternodes(network, _funding_tx(network, keys, 1_000_000 * COIN),
                                 keys[:3])
    return Genesis(network, (), (), GENESIS_TIME[network.name])
