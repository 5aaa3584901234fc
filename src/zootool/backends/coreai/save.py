"""Saving a converted Core AI program as an ``.aimodel`` without a second in-memory copy.

``AIProgram.save_asset`` (coreai-core 1.0.0b3) writes the bytecode to disk, then reads the
whole file back into one ``bytes`` object to hash it: for the flagship that is another
9.8 GB on top of the program's own constants, the peak of the whole build. This does the
same steps (asset directory, bytecode, creation stamp, program hash) but hashes the file
in pieces. It leans on the package's private helpers; :func:`save_asset` says so plainly
and falls back to the public call when they are missing.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

HASH_PIECE_BYTES = 1 << 24


def save_asset(ai_program: Any, path: Path) -> None:
    """Write ``ai_program`` to ``path`` (a new ``.aimodel`` directory) as ``save_asset`` does."""
    from coreai.authoring import asset as asset_module

    create = getattr(getattr(asset_module, "_AIModelAsset", None), "_create", None)
    if create is None or not hasattr(ai_program, "_save_bytecode"):
        ai_program.save_asset(path)  # this coreai-core changed its internals: costs one more copy
        return
    path.mkdir(parents=True)
    asset = create(path=str(path), metadata=None)
    bytecode = Path(asset._program_bytecode_path)
    ai_program._save_bytecode(bytecode)

    def stamp(meta: Any) -> None:
        meta.creation_date = time.time()
        meta._producer = asset_module._COREAI_PRODUCER

    asset.update_metadata(updates=stamp)
    Path(asset._program_hash_path).write_bytes(_sha256(bytecode))


def _sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while piece := stream.read(HASH_PIECE_BYTES):
            digest.update(piece)
    return digest.digest()
