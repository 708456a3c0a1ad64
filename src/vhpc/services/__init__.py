"""One module per real daemon: render its config (pure), build its argv, say when it is up.

Daemons are registered by name in `registry.DAEMONS`; the cluster layer asks the registry
what to run on each node role.
"""
