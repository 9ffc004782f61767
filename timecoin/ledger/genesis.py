"""Each network's genesis: the outputs it starts with and its first masternodes.

Devnet's genesis funds the development keys 0..DEVNET_FUNDED_KEYS-1 (public
knowledge: ``timecoin devnet-key N`` writes one) and registers the first
``masternodes`` of them as masternodes; ``timecoin devnet --nodes N`` asks for
N. Testnet's genesis funds the testnet faucet keys the same way, from a
published seed, and registers three. Mainnet's genesis allocates nothing and
registers no masternode until masternode registration by collateral exists.
"""

import hashlib
import struct
from dataclasses import dataclass

from timecoin.ledger.encoding import Writer
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.networks import COIN, DEVNET, MAINNET, TESTNET
from timecoin.ledger.tx import KIND_GENESIS, Transaction, TxOut

DEVNET_FUNDED_KEYS = 100
DEVNET_KEY_AMOUNT = 100_000 * COIN
GENESIS_TIME = {DEVNET.name: 1_767_225_600, TESTNET.name: 1_767_225_600,
                MAINNET.name: 1_798_761_600}


@dataclass(frozen=True)
class Genesis:
    """The genesis of one network: its transactions, masternodes and block hash."""

    network: object
    txs: tuple
    masternodes: tuple  # public keys (bytes)
    timestamp: int

    @property
    def header(self):
        w = Writer().u8(1).u8(self.network.network_id).u32(0).fixed(bytes(32), 32)
        w.u64(self.timestamp).fixed(self._tx_root(), 32)
        w.count(len(self.masternodes), 10_000)
        for pk in self.masternodes:
            w.fixed(pk, 32)
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
        }


def _funding_tx(network, keys, amount):
    outputs = tuple(TxOut(amount, k.key_hash) for k in keys)
    payload = b"timecoin genesis " + network.name.encode()
    return Transaction((), outputs, network.network_id, KIND_GENESIS, payload)


def testnet_key(index):
    """Testnet faucet key ``index`` (published, like devnet's)."""
    seed = hashlib.blake2b(b"timecoin testnet faucet " + struct.pack("<I", index),
                           digest_size=32).digest()
    return PrivateKey(seed)


def make_genesis(network, masternodes=1):
    """The genesis of ``network``; on devnet, ``masternodes`` dev keys are masternodes."""
    if network is DEVNET:
        keys = [PrivateKey.devnet(i) for i in range(max(DEVNET_FUNDED_KEYS, masternodes))]
        return Genesis(network, (_funding_tx(network, keys, DEVNET_KEY_AMOUNT),),
                       tuple(k.pubkey for k in keys[:masternodes]), GENESIS_TIME[network.name])
    if network is TESTNET:
        keys = [testnet_key(i) for i in range(10)]
        return Genesis(network, (_funding_tx(network, keys, 1_000_000 * COIN),),
                       tuple(k.pubkey for k in keys[:3]), GENESIS_TIME[network.name])
    return Genesis(network, (), (), GENESIS_TIME[network.name])
