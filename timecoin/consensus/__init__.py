"""The sans-I/O consensus cores: the Snowball engine, the poll manager, sampling and reputation.

Plain classes driven by method calls and an injected clock; nothing here imports Twisted or
another layer of the node."""
