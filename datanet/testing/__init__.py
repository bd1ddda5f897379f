"""datanet.testing: tools for testing datanet and programs built on it.

In-process and multi-process networks of real nodes, the in-memory node double
behind the HTTP API, and deterministic keys and clocks - as ``trio.testing`` is
for trio. Product code never imports this package (an import-linter contract).
"""
