"""A live cluster: build -> start -> ready -> stop, its ledger, supervisor and manager."""
