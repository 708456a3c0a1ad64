"""The `vhpc` command line: a thin client of the api layer."""
