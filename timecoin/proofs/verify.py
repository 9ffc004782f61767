"""Checking a finality proof knowing only the network's genesis, and building one.

:func:`verify_proof` follows doc/proofs.md step by step: the set in force
starts as the genesis set; each hand-off's certificate must be signed by more
than 2/3 of the set in force's weight, and its listed set must hash to its
header's ``masternode_set_hash``; the listed set is then in force. The target
block's certificate is checked against the set in force after the last
hand-off, and the txid's Merkle path against the block's ``tx_root``. The
cheap structural checks run over the whole proof before any signature is
verified.
"""

from timecoin.consensus.bft_messages import MessageError
from timecoin.consensus.certificate import CertificateError, verify_certificate
from timecoin.consensus.proposer import ValidatorSet
from timecoin.ledger.keys import verify as ed25519_verify
from timecoin.ledger.merkle import merkle_path, verify_path
from timecoin.ledger.networks import signing_network_id
from timecoin.ledger.registry import MasternodeRegistry, masternode_set_hash
from timecoin.proofs.finality import FinalityProof, ProofError, SetHandoff

__all__ = ["check_proof", "collect_handoffs", "genesis_set", "make_proof",
           "signing_network_id", "verify_proof"]


def genesis_set(genesis):
    """``{pubkey: weight}`` of the set the genesis starts: it signs block 1."""
    return MasternodeRegistry.from_genesis(genesis).active_set()


def verify_proof(proof_bytes, genesis, txid=None):
    """Decode and check a proof against ``genesis``; return the
    :class:`~timecoin.proofs.finality.FinalityProof`. ``txid``, when given,
    must be the one proved. Raises :class:`ProofError` and nothing else."""
    proof = FinalityProof.decode(proof_bytes)
    check_proof(proof, genesis, txid)
    return proof


def check_proof(proof, genesis, txid=None):
    """Check a decoded ``proof`` against ``genesis`` (see :func:`verify_proof`)."""
    network = genesis.network
    if proof.network_id != network.network_id:
        raise ProofError("wrong-network",
                         f"proof of network {proof.network_id}, genesis of {network.network_id}")
    if txid is not None and bytes(txid) != proof.txid:
        raise ProofError("txid-mismatch", f"the proof is for {proof.txid.hex()}")
    # Structure first, no signature yet: heights in order, sets matching
    # their headers and changing something, the Merkle path.
    in_force = genesis_set(genesis)
    in_force_hash = masternode_set_hash(in_force)
    signing_sets = []
    last_height = 0
    for handoff in proof.handoffs:
        header = handoff.header
        _check_header(header, network.network_id, last_height)
        new_set = handoff.active_set()
        new_hash = masternode_set_hash(new_set)
        if new_hash != header.masternode_set_hash:
            raise ProofError("set-hash-mismatch", "the listed set is not the header's",
                             header.height)
        if new_hash == in_force_hash:
            raise ProofError("handoff-no-change", "the listed set is the one in force",
                             header.height)
        signing_sets.append(in_force)
        in_force, in_force_hash, last_height = new_set, new_hash, header.height
    _check_header(proof.header, network.network_id, last_height)
    if not verify_path(proof.txid, proof.index, proof.size, list(proof.path),
                       proof.header.tx_root):
        raise ProofError("txid-not-in-block",
                         f"no Merkle path from {proof.txid.hex()} to tx_root", proof.height)
    # Then the signatures, each certificate against the set in force at its block.
    sign_id = signing_network_id(network)
    for handoff, signers in zip(proof.handoffs, signing_sets, strict=True):
        _check_certificate(handoff.certificate, handoff.header, signers, sign_id)
    _check_certificate(proof.certificate, proof.header, in_force, sign_id)
    return proof


def _check_header(header, network_id, last_height):
    if header.network_id != network_id:
        raise ProofError("wrong-network", f"a header of network {header.network_id}",
                         header.height)
    if header.height <= last_height:
        raise ProofError("handoff-out-of-order",
                         f"height {header.height} does not follow {last_height}", header.height)


def _check_certificate(certificate, header, active_set, sign_id):
    if not active_set:
        raise ProofError("no-validators", "no set is in force to sign", header.height)
    try:
        verify_certificate(certificate, ValidatorSet.from_stakes(active_set), sign_id,
                           ed25519_verify, height=header.height, block_hash=header.hash)
    except CertificateError as e:
        raise ProofError(e.reason, "the commit certificate does not verify",
                         header.height) from None
    except MessageError as e:  # decode admits no such certificate; kept for safety
        raise ProofError("malformed-certificate", str(e), header.height) from None


def collect_handoffs(genesis, blocks):
    """The hand-offs of ``blocks``: ``(header, certificate, active_set)`` in
    height order from 1, ``active_set`` the ``{pubkey: weight}`` after the
    block. Only blocks whose ``masternode_set_hash`` differs from the set
    before them are kept; a set that does not hash to its header's is a
    :class:`ValueError` (the caller's records are wrong)."""
    in_force_hash = genesis.masternode_set_hash()
    handoffs = []
    for header, certificate, active_set in blocks:
        if header.masternode_set_hash == in_force_hash:
            continue
        if masternode_set_hash(active_set) != header.masternode_set_hash:
            raise ValueError(f"the set given for block {header.height} is not its header's")
        handoffs.append(SetHandoff(header, certificate, tuple(sorted(active_set.items()))))
        in_force_hash = header.masternode_set_hash
    return tuple(handoffs)


def make_proof(genesis, handoffs, block, certificate, txid):
    """The :class:`FinalityProof` that ``txid`` is in ``block`` (a
    :class:`~timecoin.ledger.block.Block`) committed by ``certificate``;
    ``handoffs`` may run past the block (those at or above it are left out).
    :class:`ValueError` if the block does not hold ``txid``."""
    txids = list(block.all_txids)
    index = txids.index(txid)
    earlier = tuple(h for h in handoffs if h.header.height < block.height)
    return FinalityProof(genesis.network.network_id, earlier, block.header, certificate,
                         txid, index, len(txids), tuple(merkle_path(txids, index)))
