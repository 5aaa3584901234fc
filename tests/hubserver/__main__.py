"""Run the test Hub by hand: ``PYTHONPATH=tests python -m hubserver --port 8000``.

Clients upload through Xet (hf_xet installed) or LFS (``HF_HUB_DISABLE_XET=1``); ``--no-xet``
makes it an LFS-only endpoint.
"""

from __future__ import annotations

import argparse
import signal
import time

from .server import DEFAULT_ORG, DEFAULT_USER, Grant, HubServer, default_grants


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hubserver", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="Hub port (default: a free one)")
    parser.add_argument("--cdn-port", type=int, default=0, help="port LFS downloads redirect to (default: a free one)")
    parser.add_argument("--token", action="append", default=[], help="accept this write token (repeatable)")
    parser.add_argument("--user", default=DEFAULT_USER, help=f"user the tokens belong to (default: {DEFAULT_USER})")
    parser.add_argument("--no-xet", action="store_true", help="refuse Xet tokens: an LFS-only endpoint")
    return parser.parse_args(argv)


def _grants(args: argparse.Namespace) -> dict[str, Grant]:
    if not args.token:
        return default_grants()
    return {token: Grant(args.user, "write", (DEFAULT_ORG,)) for token in args.token}


def _banner(hub: HubServer, args: argparse.Namespace) -> str:
    if args.token:
        tokens = f"{len(args.token)} token(s) from --token, user {args.user}"
    else:
        tokens = "\n".join(f"  {token}  ({grant.role}, user {grant.user})" for token, grant in hub.auth.grants.items())
    return (
        f"test Hub on {hub.url}  (LFS downloads redirect to {hub.cdn_url})\n"
        f"tokens:\n{tokens}\n"
        f"Xet: {'off (clients need HF_HUB_DISABLE_XET=1)' if args.no_xet else 'on (local CAS under the storage)'}\n"
        f"try: give `zoo publish` the endpoint {hub.url} and one of the tokens\n"
        "Ctrl-C stops it; everything is kept in memory and a temporary directory."
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so SIGTERM also removes the temporary storage


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    server = HubServer(_grants(args), host=args.host, port=args.port, cdn_port=args.cdn_port, xet=not args.no_xet)
    with server as hub:
        print(_banner(hub, args), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
