"""Serving UTXO snapshots to joining peers (``get_snapshot`` ->
``snapshot_offer``, ``get_snapshot_chunk`` -> ``snapshot_chunk``).

Every answer is read through the node's ``ISnapshotSource`` (storage reads on
the writer thread, never on the reactor) and bounded by the frame limit: an
offer that would not fit ``max_message_size`` is answered empty (the node
serves no snapshot to that peer) and logged once. A peer may have at most
:data:`MAX_READS_PER_PEER` reads under way; requests beyond it are ignored
(an honest fetcher asks for fewer at once and retries elsewhere on a
timeout). The messages are rate limited with the block class
(``rate_limit_blocks``).
"""

from twisted.logger import Logger

from timecoin.finality.snapshot_messages import SnapshotChunkMessage, SnapshotOffer
from timecoin.p2p import messages as m

#: Storage reads one peer may have under way.
MAX_READS_PER_PEER = 4
#: Bytes kept free in a frame for the kind and the length prefixes.
FRAME_OVERHEAD = 64


class SnapshotServer:
    """Answers snapshot requests from ``source`` (an ``ISnapshotSource``)."""

    log = Logger()

    def __init__(self, source, max_message_size):
        self._source = source
        self._max_message_size = max_message_size
        self._network = None
        self._reads = {}  # peer_id -> reads under way
        self._too_large_logged = False
        self.served_chunks = 0

    def attach(self, network):
        self._network = network
        network.register_handler(m.GET_SNAPSHOT, self._on_get_snapshot)
        network.register_handler(m.GET_SNAPSHOT_CHUNK, self._on_get_chunk)

    def _read(self, peer_id, d, answer):
        if self._reads.get(peer_id, 0) >= MAX_READS_PER_PEER:
            d.cancel()
            return
        self._reads[peer_id] = self._reads.get(peer_id, 0) + 1

        def done(result):
            left = self._reads.get(peer_id, 1) - 1
            if left:
                self._reads[peer_id] = left
            else:
                self._reads.pop(peer_id, None)
            return result
        d.addBoth(done)
        d.addCallback(answer)
        d.addErrback(lambda f: self.log.failure("serving a snapshot", f))

    def _on_get_snapshot(self, peer_id, message):
        def answer(found):
            offer = SnapshotOffer() if found is None else SnapshotOffer(*found)
            if len(m.encode_message(offer)) + FRAME_OVERHEAD > self._max_message_size:
                if not self._too_large_logged:
                    self._too_large_logged = True
                    self.log.warn("the newest snapshot's offer exceeds network.max_message_size"
                                  " ({limit} bytes): not served", limit=self._max_message_size)
                offer = SnapshotOffer()
            self._network.send(peer_id, offer)
        self._read(peer_id, self._source.newest_offer(), answer)

    def _on_get_chunk(self, peer_id, message):
        def answer(data):
            if data is not None:
                self.served_chunks += 1
            self._network.send(peer_id, SnapshotChunkMessage(message.height, message.index,
                                                             data or b""))
        self._read(peer_id, self._source.chunk(message.height, message.index), answer)
