"""The torch blocks every family's decode graph is built from (``arch.decoder``), one per layout spec."""
