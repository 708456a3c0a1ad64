"""`python -m vhpc.cli` runs the CLI (used by tests and when the script is not on PATH)."""

from vhpc.cli.entry import main

main()
