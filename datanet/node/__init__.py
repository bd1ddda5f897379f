"""datanet.node: the running node and its home directory.

``driver`` carries out routing/'s state machines over the p2p host and the
stores and returns ``results``; ``home`` is the data directory (the node's key,
certificates, trust) laid out by ``paths``; ``authority`` the organizations
created here (root keys, serials, revocations); ``config`` the typed settings.
Importing this package imports nothing heavy, so the CLI can read a home and
its config without loading libp2p.
"""
