"""The ``zoo`` command: typer commands, what they print, and the orchestration of each command."""
