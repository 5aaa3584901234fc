"""``python -m zootool.fetch.gguf OUT [--package NAME]``: a checkpoint from a GGUF file.

Prints the folder it wrote; an error is one line (what, and what to do next) and the exit
code of its ``ZooError`` (9 for a package that is missing or ships no single .gguf), without a traceback unless
``ZOO_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from ...errors import ZooError
from . import DEFAULT_PACKAGE, convert


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m zootool.fetch.gguf", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the checkpoint folder to write")
    parser.add_argument("--package", default=DEFAULT_PACKAGE, help="an installed package that ships one .gguf file")
    args = parser.parse_args(argv)
    if os.environ.get("ZOO_DEBUG") != "1":
        from ...build.quiet import no_progress_bars, quiet_libraries

        os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF loader's own bar, which transformers cannot turn off
        quiet_libraries()
        warnings.simplefilter("ignore")
    try:
        with no_progress_bars():
            print(convert(args.out, args.package))
    except ZooError as exc:
        if os.environ.get("ZOO_DEBUG") == "1":
            raise
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
