"""``timecoin proof`` and ``timecoin verify-proof``: finality proofs.

``proof TXID [--out FILE]`` asks the node (``getfinalityproof``) and writes
the proof's bytes to a new file (or prints them as hex). ``verify-proof FILE``
needs no node: it checks the file against the network's genesis alone
(:func:`timecoin.proofs.verify.verify_proof`, doc/proofs.md) and prints one
line, exit 0 if the proof holds and 1 with the refusal's reason if not. A
devnet genesis depends on how many development keys it registers: that is
``--devnet-masternodes`` or, without it, the data directory's
``[node] devnet_masternodes`` (as ``timecoin devnet`` writes it).
"""

import os
import re

from twisted.internet import defer

from timecoin.cli.registry import CommandError, UsageError, command
from timecoin.ledger.genesis import make_genesis
from timecoin.node.config import ConfigError, resolve
from timecoin.proofs.finality import MAGIC, MAX_PROOF_SIZE, ProofError
from timecoin.proofs.verify import verify_proof

_TXID_RE = re.compile(r"[0-9a-fA-F]{64}")
_HEX_RE = re.compile(rb"\s*([0-9a-fA-F]+)\s*")


def _txid_argument(text):
    if not _TXID_RE.fullmatch(text):
        raise UsageError(f"{text!r} is not a transaction id (64 hex digits)")
    return text.lower()


def _args_proof(p):
    p.add_argument("txid", metavar="TXID")
    p.add_argument("--out", metavar="FILE", default=None,
                   help="file to write the proof to (default: print it as hex)")


@command("proof", "get a finality proof of a transaction in a block", _args_proof)
@defer.inlineCallbacks
def run_proof(ctx):
    txid = _txid_argument(ctx.args.txid)
    out = ctx.args.out
    if out is not None and os.path.lexists(out):
        raise UsageError(f"refusing to overwrite existing file {out}")
    result = yield ctx.rpc.call("getfinalityproof", txid)
    data = bytes.fromhex(result["hex"])
    height = result["block_height"]
    if out is None:
        ctx.emit({"txid": txid, "block_height": height, "hex": result["hex"]}, result["hex"])
        return 0
    _write_new(out, data)
    ctx.emit({"txid": txid, "block_height": height, "file": os.path.abspath(out),
              "bytes": len(data)},
             f"proof of {txid} (block {height}) written to {out} ({len(data)} bytes)")
    return 0


def _write_new(path, data):
    tmp = f"{path}.partial"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # fails if the file appeared meanwhile: never overwritten
    except OSError as e:
        raise CommandError(f"cannot write {path}: {e.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _args_verify(p):
    p.add_argument("file", metavar="FILE", help="the proof (its bytes, or their hex)")
    p.add_argument("--txid", metavar="TXID", default=None,
                   help="the transaction the proof must be of")
    p.add_argument("--devnet-masternodes", type=int, metavar="N", default=None,
                   help="devnet only: how many development keys the genesis registers "
                        "(default: the data directory's [node] devnet_masternodes, else 1)")


@command("verify-proof", "check a finality proof offline, knowing only the genesis",
         _args_verify)
def run_verify_proof(ctx):
    txid = bytes.fromhex(_txid_argument(ctx.args.txid)) if ctx.args.txid else None
    data = read_proof_file(ctx.args.file)
    genesis = genesis_of(ctx)
    try:
        proof = verify_proof(data, genesis, txid=txid)
    except ProofError as e:
        ctx.emit({"valid": False, "reason": e.reason, "detail": e.detail, "height": e.height},
                 f"invalid: {e}")
        return 1
    block_hash = proof.header.hash.hex()
    ctx.emit({"valid": True, "txid": proof.txid.hex(), "block_height": proof.height,
              "block_hash": block_hash, "handoffs": len(proof.handoffs)},
             f"ok: {proof.txid.hex()} is in block {proof.height} {block_hash}")
    return 0


def read_proof_file(path):
    """The proof's bytes from ``path``: raw, or hexadecimal text (as the RPC's
    ``hex``); at most a little over the largest proof is read."""
    try:
        with open(path, "rb") as f:
            data = f.read(2 * MAX_PROOF_SIZE + 3)
    except OSError as e:
        raise CommandError(f"cannot read {path}: {e.strerror}") from None
    if not data.startswith(MAGIC[:1]):
        match = _HEX_RE.fullmatch(data)
        if match is not None and len(match.group(1)) % 2 == 0:
            return bytes.fromhex(match.group(1).decode())
    return data


def genesis_of(ctx):
    """The genesis of ``--network`` (on devnet, of ``--devnet-masternodes``)."""
    network = ctx.network
    count = ctx.args.devnet_masternodes
    if network.name != "devnet" and count is not None:
        raise UsageError("--devnet-masternodes applies to devnet only")
    if network.name == "devnet" and count is None:
        try:
            count = resolve(network.name, None, ctx.datadir)["node"]["devnet_masternodes"]
        except (ConfigError, OSError) as e:
            raise UsageError(f"cannot read the data directory's configuration: {e}") from None
    if count is not None and count < 1:
        raise UsageError("--devnet-masternodes must be 1 or more")
    return make_genesis(network, count or 1)
