"""One module per architecture family, each one typed config class (see ``arch.contract``)."""
