"""Finality over the wire: the Twisted services that carry the consensus cores between
masternodes (Snowball finality, lone-node finality, their messages, events and catch-up)."""
