"""A chain of devnet block headers committed by real Ed25519 certificates, for
the finality-proof tests (no node, no clock: headers, sets and signatures)."""

import hashlib

from timecoin.consensus.bft_messages import PRECOMMIT, sign_bytes
from timecoin.consensus.certificate import CommitCertificate
from timecoin.ledger.block import Block, BlockHeader
from timecoin.ledger.genesis import make_genesis
from timecoin.ledger.keys import PrivateKey
from timecoin.ledger.merkle import merkle_root
from timecoin.ledger.networks import DEVNET
from timecoin.ledger.registry import masternode_set_hash
from timecoin.proofs.verify import collect_handoffs, genesis_set, make_proof, signing_network_id

_KEYS = {}


def devnet_key(index):
    """Development key ``index`` (cached: deriving one costs a little)."""
    if index not in _KEYS:
        _KEYS[index] = PrivateKey.devnet(index)
    return _KEYS[index]


def txids_for(height, count):
    """``count`` distinct made-up txids for the block at ``height``."""
    return tuple(hashlib.blake2b(b"tx %d %d" % (height, i), digest_size=32).digest()
                 for i in range(count))


def quorum_of(active_set):
    """The fewest pubkeys, in key order, holding more than 2/3 of the weight."""
    total, stake, chosen = sum(active_set.values()), 0, []
    for pubkey in sorted(active_set):
        if 3 * stake > 2 * total:
            break
        chosen.append(pubkey)
        stake += active_set[pubkey]
    return chosen


class SignedChain:
    """Blocks 1.. on a devnet genesis of ``masternodes`` dev keys; the set in
    force signs each block, and a block may change the set after it."""

    def __init__(self, masternodes=4, network=DEVNET):
        self.genesis = make_genesis(network, masternodes) if network is DEVNET else \
            make_genesis(network)
        self.network = self.genesis.network
        self.pubkeys = {devnet_key(i).pubkey: devnet_key(i) for i in range(max(masternodes, 8))}
        self.in_force = genesis_set(self.genesis)
        self.records = []  # (Block, certificate, set after it)

    def key_of(self, pubkey):
        return self.pubkeys[pubkey]

    def add_key(self, index):
        """The pubkey of dev key ``index``, known to the chain's signers."""
        key = devnet_key(index)
        self.pubkeys[key.pubkey] = key
        return key.pubkey

    @property
    def height(self):
        return len(self.records)

    def add_block(self, tx_count=3, new_set=None, signers=None, deactivated=(),
                  utxo_set_hash=bytes(32)):
        """Append a block of ``tx_count`` txids, signed by ``signers`` (default:
        a quorum of the set in force); ``new_set`` is the set after it."""
        height = self.height + 1
        prev = self.records[-1][0].hash if self.records else self.genesis.hash
        after = dict(new_set) if new_set is not None else dict(self.in_force)
        txids = txids_for(height, tx_count)
        header = BlockHeader(self.network.network_id, height, prev, 1_767_225_600 + 2 * height,
                             0, sorted(self.in_force)[0], merkle_root(txids), utxo_set_hash,
                             masternode_set_hash(after), 0, tuple(deactivated))
        block = Block(header, txids)
        chosen = quorum_of(self.in_force) if signers is None else signers
        certificate = self.certify(header, chosen)
        self.records.append((block, certificate, after))
        self.in_force = after
        return block, certificate

    def certify(self, header, signers, round_=0, block_hash=None):
        """A certificate of ``header`` signed by ``signers`` (pubkeys)."""
        block_hash = header.hash if block_hash is None else block_hash
        message = sign_bytes(signing_network_id(self.network), header.height, round_,
                             PRECOMMIT, block_hash)
        signatures = tuple(sorted((pk, self.key_of(pk).sign(message)) for pk in signers))
        return CommitCertificate(header.height, round_, block_hash, signatures)

    def handoffs(self):
        return collect_handoffs(self.genesis, ((b.header, c, s) for b, c, s in self.records))

    def proof(self, height=None, tx_index=0):
        """The proof of txid ``tx_index`` of block ``height`` (default: the last)."""
        block, certificate, _ = self.records[(height or self.height) - 1]
        return make_proof(self.genesis, self.handoffs(), block, certificate,
                          block.all_txids[tx_index])
