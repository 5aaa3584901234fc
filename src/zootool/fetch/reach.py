"""Whether this machine can open a connection to a URL's host, in seconds rather than a client's minute of retries.

huggingface_hub retries a failed connection with back-off (about 25 s on a machine without
network) before it gives up; a build whose weights cannot come asks once, up front. With an
HTTP(S) proxy configured for the URL's scheme, the proxy is what must answer.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

CONNECT_TIMEOUT_SECONDS = 5.0
DEFAULT_PORTS = {"https": 443, "http": 80}


def unreachable(url: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> str | None:
    """Why ``url``'s host (or its proxy) cannot be reached, or None when a TCP connection opens."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or DEFAULT_PORTS.get(parts.scheme, 443)
    proxy = getproxies().get(parts.scheme)
    if proxy and not proxy_bypass(host):
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = parts.hostname or "", parts.port or 8080
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror as exc:
        return f"{host} does not resolve: {exc.strerror}"
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:.0f} s"
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"
