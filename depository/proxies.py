"""The real client address behind trusted proxies (issue 18): Werkzeug's ProxyFix, applied only to
requests whose peer is one of the `trusted_proxies` networks.

Without this, behind the TLS proxy that docs/deploy.md recommends every request came from the proxy's
address, so per-address limits put every user in one bucket: 50 bad sign-ins by anyone locked out all.
Applying ProxyFix unconditionally would be worse: anyone could pick their address by sending
`X-Forwarded-For`. So the header is believed only when the peer is trusted, and only as many hops as are
trusted from the right: `client, proxy2` received from trusted proxy1 with proxy2 trusted too gives
`client`; an untrusted hop anywhere stops the walk there (whatever lies left of it was written by the
untrusted party). Forwarded headers from untrusted peers are removed, so nothing downstream can read them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT",
             "HTTP_X_FORWARDED_PREFIX", "HTTP_FORWARDED")
MAX_HOPS = 8


def parse_networks(cidrs: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The networks of `trusted_proxies`; ValueError names the first that is not a network."""
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


class TrustedProxies:
    def __init__(self, app: Any, cidrs: Iterable[str]) -> None:
        self.app = app
        self.networks = parse_networks(cidrs)
        # One ProxyFix per hop count: ProxyFix takes the n-th address from the right of X-Forwarded-For.
        self._fixes = [ProxyFix(app, x_for=n, x_proto=1, x_host=1, x_port=1) for n in range(1, MAX_HOPS + 1)]

    def trusted(self, addr: str | None) -> bool:
        try:
            ip = ipaddress.ip_address((addr or "").strip().strip("[]"))
        except ValueError:
            return False
        return any(ip.version == n.version and ip in n for n in self.networks)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not self.networks or not self.trusted(environ.get("REMOTE_ADDR")):
            for h in FORWARDED:
                environ.pop(h, None)
            return self.app(environ, start_response)
        hops = [h.strip() for h in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        n = 1
        # Walk from the right past further trusted proxies; the first untrusted address is the client.
        while n < len(hops) and n < MAX_HOPS and self.trusted(hops[-n]):
            n += 1
        if not hops:
            return self.app(environ, start_response)
        return self._fixes[n - 1](environ, start_response)
