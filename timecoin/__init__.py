"""timecoin: an instant-finality UTXO cryptocurrency node built on Twisted."""

__version__ = "0.1.0"
