"""The peer-to-peer network as the other components see it."""

from zope.interface import Attribute, Interface


class IPeer(Interface):
    """One connected peer, as ``peers()`` and ``get_peer()`` return it."""

    peer_id = Attribute("The connection's id (int), unique in this process.")
    pubkey = Attribute("The peer's authenticated public key (bytes), None before the handshake.")


class IPeerMessaging(Interface):
    """Messages to and from ready peers: what finality and catch-up need."""

    def register_handler(kind, callback):
        """Call ``callback(peer_id, message)`` for every message of ``kind`` from a ready peer."""

    def send(peer_id, message):
        """Send ``message`` to a ready peer; False if there is no such peer."""

    def peers():
        """The ready peers, as ``IPeer`` providers."""

    def get_peer(peer_id):
        """The ``IPeer`` of ``peer_id`` (ready or not), or None."""

    def masternode_peers():
        """``{pubkey: peer_id}`` of the ready peers that are masternodes: a
        read-only mapping kept current on connect/disconnect (no copy made)."""

    def ban_peer(peer_id, reason):
        """``peer_id`` proved itself dishonest (``reason``, a short text): close
        its connection and ban its address, as for any misbehaviour (the
        network's ban list: the ban grows with repeat offences). False if
        there is no such connection."""


class IPeerPolicing(Interface):
    """Punishing a peer that sent what it must not (a lie, not a slow answer)."""

    def ban_peer(peer_id, reason):
        """Close the connection of ``peer_id`` and ban its address (the p2p
        ban path: ``network.ban_base`` doubled per offence); False if there is
        no such connection."""


class IPeerNetwork(IPeerMessaging):
    """The peer-to-peer network: connections, relay and bans."""

    def broadcast_tx(tx, push=False):
        """Announce ``tx`` to every connected peer that may not have it
        (``push``: send it whole rather than by txid)."""

    def peer_info():
        """A list of dicts as ``getpeerinfo`` returns."""

    def peer_count():
        """Number of connected, handshaken peers."""

    def masternodes_changed():
        """A block changed the active set: the ready peers are classified
        again (``masternode_peers`` holds the active masternodes among them)."""

    def statistics():
        """The metrics of the peer limits: ``(name, kind, doc, samples)`` tuples,
        ``kind`` "gauge" or "counter", ``samples`` a list of ``(labels dict, value)``."""

    def list_banned():
        """Current bans: dicts of address, banned_until, time_remaining, offences, reason."""

    def set_ban(address, seconds=None, remove=False):
        """Ban ``address`` (an IP) for ``seconds`` (default: by offences), or lift it;
        a Deferred."""

    def clear_banned():
        """Lift every ban (a Deferred)."""


class IListeningService(Interface):
    """A child service of the node that accepts connections; the node stops
    these first, before the services that close connections."""

    port = Attribute("The listening port, None while not listening.")
    what = Attribute("What listens, for messages (\"API\").")
    description = Attribute("The endpoint string it listens on.")
    failure = Attribute("The Failure of listening, None unless it failed.")
