"""The export's child process; its entry point is ``__main__`` (``python -m zootool.build.export_child``)."""
