"""The manager process of one cluster: the composition root.

``python -m vhpc.server.manager boot|adopt NAME`` builds the Cluster, its Inventory, the
Observer, the ClusterAPI and the web app, and owns their threads. Nothing in cluster/,
runtime/, services/, spec/ or observe/ imports this package (tests/unit/test_layering.py).
"""
