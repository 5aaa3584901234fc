"""``zoo build``: the staged pipeline, the export child process, zoo-wide runs and their executors."""
