"""The node's read side: transaction status, waiting, balances, health.

:class:`NodeQueries` provides :class:`~timecoin.interfaces.INodeQueries`, which
the API answers from. It reads the node's components through
:class:`~timecoin.interfaces.INodeComponents` and changes nothing but the
waiters it keeps for ``waitfortransaction`` (woken by the node's decisions,
or at their timeout through a shared :class:`~timecoin.finality.deadlines.Deadlines`).
"""

from twisted.internet import defer
from zope.interface import implementer

from timecoin.finality.deadlines import Deadlines
from timecoin.interfaces import INodeQueries
from timecoin.ledger.keys import decode_address
from timecoin.ledger.tx import MIN_FEE_RATE
from timecoin.ledger.utxo import UtxoStatus
from timecoin.proofs.source import ProofUnavailable

#: Blocks a node may be behind its peers' announced height and still be healthy.
BEHIND_BLOCKS = 2

_STATUS_NAMES = {UtxoStatus.UNSPENT: "unspent", UtxoStatus.LOCKED: "locked",
                 UtxoStatus.SPENT_PENDING: "pending"}


@implementer(INodeQueries)
class NodeQueries:
    """The read side of one node (see the module docstring).

    ``clock`` is the node's ``IReactorTime``; ``node`` provides ``INodeComponents``.
    """

    def __init__(self, clock, node):
        self._clock = clock
        self._node = node
        self._waiters = {}  # txid -> [Deferred]
        self._deadlines = Deadlines(clock, self._timed_out, lambda item: item[1].called)

    # -- transactions ----------------------------------------------------------

    def transaction_status(self, txid):
        node = self._node
        entry = node.mempool.get(txid)
        committing = node.journal.committing(txid) if entry is None else None
        if entry is not None or committing is not None:
            raw = entry.tx.raw if entry is not None else committing.raw
            reason = node.finality.pending_reason(txid) if entry is not None else None
            return defer.succeed(_status(txid, "pending", raw, reason=reason))
        reason = node.unwound.get(txid) or node.mempool.rejection(txid)
        if reason is not None:
            return defer.succeed(_status(txid, "rejected", None, reason=reason))
        record = node.journal.recent(txid)
        d = defer.succeed(record) if record is not None else node.storage.get_transaction(txid)
        return d.addCallback(lambda r: None if r is None else _record_status(
            r, node.chain.height_of_tx(r.txid)))

    def wait_for_transaction(self, txid, timeout_s):
        """A transaction still being verified is waited for like a pending one
        (the same JSON-RPC batch may carry its ``sendrawtransaction``)."""
        node = self._node
        if (txid in node.mempool or node.journal.committing(txid) is not None
                or node.is_validating(txid)):
            return self._wait_if_pending(None, txid, timeout_s, pending=True)
        return self.transaction_status(txid).addCallback(self._wait_if_pending, txid,
                                                         timeout_s)

    def _wait_if_pending(self, status, txid, timeout_s, pending=False):
        if not pending and status is not None and status["status"] != "pending":
            return status
        if not pending and status is None and self.drop_reason(txid) is not None:
            return None  # dropped here: nothing to wait for on this node
        waiter = defer.Deferred()
        self._waiters.setdefault(txid, []).append(waiter)
        self._deadlines.schedule(timeout_s, (txid, waiter))
        return waiter.addCallback(lambda _: self.transaction_status(txid))

    def finality_proof(self, txid):
        return self.transaction_status(txid).addCallback(self._proof_of, txid)

    def _proof_of(self, status, txid):
        shown = txid.hex()
        if status is None:
            dropped = self.drop_reason(txid)
            more = f" (dropped here without a decision: {dropped})" if dropped else ""
            raise ProofUnavailable("unknown", f"transaction not found: {shown}{more}")
        if status["status"] == "pending":
            raise ProofUnavailable("pending", f"transaction {shown} is pending: not final "
                                              "yet, so in no block")
        if status["status"] == "rejected":
            raise ProofUnavailable("rejected", f"transaction {shown} was rejected "
                                               f"({status['reason']}): it is in no block")
        height = status["block_height"]
        if height is None:
            raise ProofUnavailable("not-in-block-yet", f"transaction {shown} is finalized but "
                                   "not in a block yet: ask again after the next block")
        chain = self._node.chain
        block = chain.block_at(height)
        if block is None:
            raise ProofUnavailable("no-block", f"no block at height {height} here yet")
        return self._node.proofs.proof(block, chain.certificate_at(height), txid), height

    def drop_reason(self, txid):
        return self._node.mempool.drop_reason(txid)

    def _timed_out(self, item):
        txid, waiter = item
        waiters = self._waiters.get(txid)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._waiters[txid]
        waiter.callback(None)

    def wake(self, txid):
        for d in self._waiters.pop(txid, ()):
            if not d.called:
                d.callback(None)

    def stop(self):
        self._deadlines.stop()

    # -- addresses and the UTXO set ---------------------------------------------

    def unspent(self, address):
        node = self._node
        _, key_hash = decode_address(address, node.network.network_id)
        d = node.storage.utxos_for(key_hash)
        d.addCallback(lambda stored: [
            (op, amount, _STATUS_NAMES[status])
            for op, amount, status in node.state.overlay(key_hash, stored)
        ])
        return d

    def is_collateral(self, outpoint):
        return self._node.registry.collateral_of(outpoint) is not None

    def balance(self, address):
        node = self._node
        _, key_hash = decode_address(address, node.network.network_id)
        pending = node.mempool.incoming(key_hash)
        d = self.unspent(address)
        d.addCallback(lambda rows: {"finalized": sum(a for _, a, _ in rows), "pending": pending})
        return d

    def txoutset_info(self):
        state = self._node.state
        return {"count": state.count, "total_amount": state.total_amount,
                "hash": state.set_hash()}

    def mempool_info(self):
        m = self._node.mempool
        # The node refuses fees under MIN_FEE_RATE; a full mempool asks more.
        return {"size": m.size, "bytes": m.bytes, "max_bytes": m.max_bytes,
                "min_fee_rate": max(MIN_FEE_RATE, m.min_fee_rate())}

    # -- chain, peers, the node ---------------------------------------------------

    def height(self):
        return self._node.chain.height()

    def chain_base(self):
        # Known from storage at once, before the stored chain is replayed.
        return self._node.chain.base or self._node.snapshot_base

    def block(self, height_or_hash):
        return self._node.chain.get_block(height_or_hash)

    def block_header(self, height_or_hash):
        return self._node.chain.get_block_header(height_or_hash)

    def masternodes(self):
        return self._node.chain.masternodes()

    def masternodes_active(self):
        """Masternodes of the active set this node hears from (itself included)."""
        return sum(1 for mn in self._node.chain.masternodes() if mn["active"] and mn["online"])

    def peer_count(self):
        network = self._node.peer_network
        return network.peer_count() if network is not None else 0

    def info(self):
        node = self._node
        return {
            "network": node.network.name, "height": node.chain.height(),
            "best_block_hash": node.chain.best_block_hash().hex(), "peers": self.peer_count(),
            "masternodes_active": self.masternodes_active(), "mempool_size": node.mempool.size,
            "utxo_set_hash": node.state.set_hash(), "version": node.version,
        }

    def _blocks_behind(self):
        """How far the best height peers announced at connection is ahead of ours."""
        network = self._node.peer_network
        heights = [p.get("best_height") for p in network.peer_info()] if network else []
        best = max((h for h in heights if h is not None), default=0)
        return max(0, best - self._node.chain.height())

    def health(self):
        node = self._node
        problems = []
        check = node.storage_check
        if check.state == "verifying":
            done, expected = check.progress
            problems.append(f"storage: verifying the UTXO set ({done} of {expected} outputs "
                            "checked)")
        elif check.state == "damaged":
            problems.append(f"storage: {check.problem}")
        if node.flush_error:
            problems.append(f"storage: {node.flush_error}")
        if node.journal.last_error:
            problems.append(f"journal: {node.journal.last_error}")
        active = self.masternodes_active()
        if active < node.network.min_masternodes:
            problems.append(f"{active} active masternodes, {node.network.min_masternodes} needed")
        if node.network.name != "devnet" and self.peer_count() == 0:
            problems.append("network: 0 peers")
        cannot_poll = node.finality.poll_abort_reason
        if cannot_poll:
            problems.append(f"finality: cannot poll ({cannot_poll})")
        stalled = node.finality.stalled()
        if stalled:
            problems.append(f"finality: {stalled} pending transactions in stalled conflict sets")
        if node.safety_incidents:
            problems.append(f"{node.safety_incidents} safety incidents; last: "
                            f"{node.safety_incident}")
        behind = self._blocks_behind()
        if behind > BEHIND_BLOCKS:
            problems.append(f"chain: {behind} blocks behind the best height peers announced")
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "network": node.network.name,
            "height": node.chain.height(),
            "peers": self.peer_count(),
            "masternodes_active": active,
            "mempool_size": node.mempool.size,
            "journal_backlog": node.journal.backlog,
            "uptime_s": round(self._clock.seconds() - node.started_at, 1),
            "version": node.version,
        }


def _status(txid, status, raw, block_height=None, finality_ms=None, reason=None):
    """``reason``: why rejected, or that a pending one's conflict set is stalled."""
    return {"txid": txid.hex(), "status": status, "reason": reason,
            "block_height": block_height, "finality_ms": finality_ms,
            "hex": raw.hex() if raw is not None else None}


def _record_status(record, confirmed_at=None):
    """``confirmed_at``: the height of the block that confirmed it, if the chain
    knows it in memory (a record read lately may predate its block's write)."""
    height = record.block_height if record.block_height is not None else confirmed_at
    status = "confirmed" if height is not None else "finalized"
    return _status(record.txid, status, record.raw, height, record.finality_ms)
