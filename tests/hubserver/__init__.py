"""A Hugging Face Hub look-alike for tests: the real huggingface_hub client talks to it over HTTP.

Run by hand with ``PYTHONPATH=tests python -m hubserver --port 8000``.
"""

from .server import DEFAULT_ORG, DEFAULT_USER, READ_TOKEN, WRITE_TOKEN, Grant, HubServer
from .store import Commit, FileEntry

__all__ = ["Commit", "DEFAULT_ORG", "DEFAULT_USER", "FileEntry", "Grant", "HubServer", "READ_TOKEN", "WRITE_TOKEN"]
