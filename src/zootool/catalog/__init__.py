"""The catalog: build records, the catalog model, markdown and index files, status."""
