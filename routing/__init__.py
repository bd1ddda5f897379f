"""routing: sans-I/O Kademlia, record and provider stores, gossip and request-routing policy.

Pure state machines: events and the current time in, actions out. No trio, no
libp2p, no sqlite3 (enforced by import-linter).
"""

__all__: list[str] = []
