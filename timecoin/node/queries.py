"""What the API asks of a node: transaction status, waiting, balances, health.

A mixin of :class:`timecoin.node.service.Node`: it reads the node's components
(mempool, state, journal, storage, chain, peer network) and changes nothing
but the waiters it keeps for ``waitfortransaction``.
"""

import heapq
import time

from twisted.internet import defer

from timecoin.ledger.keys import decode_address
from timecoin.ledger.utxo import UtxoStatus

_STATUS_NAMES = {UtxoStatus.UNSPENT: "unspent", UtxoStatus.LOCKED: "locked",
                 UtxoStatus.SPENT_PENDING: "pending"}


class NodeQueries:
    """The read side of the node (see the module docstring)."""

    def transaction_status(self, txid):
        """Fire with the ``gettransaction`` dict of ``txid``, or None if unknown."""
        entry = self.mempool.get(txid)
        if entry is not None or txid in self._committing:
            raw = entry.tx.raw if entry is not None else self._committing[txid].raw
            return defer.succeed(_status(txid, "pending", raw))
        reason = self.mempool.rejection(txid)
        if reason is not None:
            result = _status(txid, "rejected", None)
            result["reason"] = reason
            return defer.succeed(result)
        record = self._recent.get(txid)
        d = defer.succeed(record) if record is not None else self.storage.get_transaction(txid)
        return d.addCallback(lambda r: None if r is None else _record_status(r))

    def wait_for_transaction(self, txid, timeout_s):
        """Fire with the status once final (finalized/rejected) or at the timeout.

        A transaction still being verified is waited for like a pending one
        (the same JSON-RPC batch may carry its ``sendrawtransaction``)."""
        if txid in self.mempool or txid in self._committing or txid in self._validating:
            return self._wait_if_pending(None, txid, timeout_s, pending=True)
        return self.transaction_status(txid).addCallback(self._wait_if_pending, txid,
                                                         timeout_s)

    def _wait_if_pending(self, status, txid, timeout_s, pending=False):
        if not pending and status is not None and status["status"] != "pending":
            return status
        waiter = defer.Deferred()
        self._waiters.setdefault(txid, []).append(waiter)
        deadline = self.reactor.seconds() + timeout_s
        heapq.heappush(self._wait_deadlines, (deadline, id(waiter), txid, waiter))
        if self._wait_timer is None or self._wait_timer.getTime() > deadline:
            if self._wait_timer is not None and self._wait_timer.active():
                self._wait_timer.cancel()
            self._wait_timer = self.reactor.callLater(timeout_s, self._wait_timeouts)
        return waiter.addCallback(lambda _: self.transaction_status(txid))

    def _wait_timeouts(self):
        """Wake the waiters whose timeout passed (one timer for all of them)."""
        self._wait_timer = None
        now = self.reactor.seconds()
        heap = self._wait_deadlines
        while heap and (heap[0][0] <= now or heap[0][3].called):
            _, _, txid, waiter = heapq.heappop(heap)
            if waiter.called:
                continue
            waiters = self._waiters.get(txid)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[txid]
            waiter.callback(None)
        if heap:
            self._wait_timer = self.reactor.callLater(max(0.0, heap[0][0] - now),
                                                      self._wait_timeouts)

    def unspent(self, address):
        """Fire with ``[(outpoint, amount, status_name)]`` of ``address``."""
        _, key_hash = decode_address(address, self.network.network_id)
        d = self.storage.utxos_for(key_hash)
        d.addCallback(lambda stored: [
            (op, amount, _STATUS_NAMES[status])
            for op, amount, status in self.state.overlay(key_hash, stored)
        ])
        return d

    def balance(self, address):
        _, key_hash = decode_address(address, self.network.network_id)
        pending = sum(self._incoming.get(key_hash, {}).values())
        d = self.unspent(address)
        d.addCallback(lambda rows: {"finalized": sum(a for _, a, _ in rows), "pending": pending})
        return d

    def txoutset_info(self):
        return {"count": self.state.count, "total_amount": self.state.total_amount,
                "hash": self.state.set_hash()}

    def peer_count(self):
        return self.peer_network.peer_count() if self.peer_network is not None else 0

    def masternodes_active(self):
        return sum(1 for mn in self.chain.masternodes() if mn["active"])

    def _masternode_active(self, pubkey):
        if pubkey == self.identity.pubkey:
            return True
        network = self.peer_network
        return network is not None and any(p.pubkey == pubkey for p in network.peers())

    def health(self):
        problems = []
        if self._flush_error:
            problems.append(f"storage: {self._flush_error}")
        if self.journal.last_error:
            problems.append(f"journal: {self.journal.last_error}")
        active = self.masternodes_active()
        if active < self.network.min_masternodes:
            problems.append(f"{active} active masternodes, {self.network.min_masternodes} needed")
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "network": self.network.name,
            "height": self.chain.height(),
            "peers": self.peer_count(),
            "masternodes_active": active,
            "mempool_size": self.mempool.size,
            "journal_backlog": self.journal.backlog,
            "uptime_s": round(time.time() - self.started_at, 1),
            "version": self.version,
        }


def _status(txid, status, raw, block_height=None, finality_ms=None):
    return {"txid": txid.hex(), "status": status, "block_height": block_height,
            "finality_ms": finality_ms, "hex": raw.hex() if raw is not None else None}


def _record_status(record):
    status = "confirmed" if record.block_height is not None else "finalized"
    return _status(record.txid, status, record.raw, record.block_height, record.finality_ms)
