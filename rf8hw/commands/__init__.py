"""Sub-commands of the rf8hw CLI (see rf8hw.cli)."""
