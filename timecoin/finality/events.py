"""Finality events for subscribers on the wire.

A peer — typically another Twisted program using :mod:`timecoin.p2p` as a
library — sends ``subscribe``; from then on the node sends it a
``finality_event`` for each of its decisions: a transaction finalized (once
its journal record is durable) or rejected (with the reason).
"""

from zope.interface import implementer

from timecoin.finality.messages import FinalityEvent
from timecoin.interfaces import IFinalityEvents
from timecoin.p2p import messages as m

MAX_SUBSCRIBERS = 256


@implementer(IFinalityEvents)
class FinalityEventPublisher:
    """Pushes this node's finality decisions to the peers that subscribed."""

    def __init__(self):
        self._network = None
        self._subscribers = set()
        self._listeners = []

    def attach(self, network):
        self._network = network
        network.register_handler(m.SUBSCRIBE, self._on_subscribe)

    def _on_subscribe(self, peer_id, message):
        if len(self._subscribers) < MAX_SUBSCRIBERS:
            self._subscribers.add(peer_id)

    @property
    def subscribers(self):
        return len(self._subscribers)

    def add_listener(self, callback):
        self._listeners.append(callback)

    def publish(self, txid, accepted, reason, finality_ms):
        for listener in self._listeners:
            listener(txid, accepted, reason, finality_ms)
        if not self._subscribers:
            return
        ms = 0 if finality_ms is None else min(int(finality_ms), 2**32 - 1)
        event = FinalityEvent(txid, accepted, reason.split(":")[0][:32], ms)
        for peer_id in list(self._subscribers):
            if not self._network.send(peer_id, event):
                self._subscribers.discard(peer_id)
