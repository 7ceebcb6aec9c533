"""Device addresses: whether one points at this machine or a link-local network, and the form non-admins see."""

from __future__ import annotations

import re
from ipaddress import IPv6Address, ip_address, ip_network
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Where a device may not be: this machine (loopback, and the unspecified address, which reaches it too) and
#: link-local networks (169.254.169.254 is the cloud metadata service). `[devices] allow_loopback` lifts it.
LOCAL_NETWORKS = tuple(ip_network(n) for n in ("127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128",
                                               "169.254.0.0/16", "fe80::/10"))
LOCAL_NAMES = ("localhost", "localhost.localdomain")
#: Query parameters whose values are credentials (`?token=…`, `?api_key=…`, `?sig=…`).
_SECRET_PARAM = re.compile(r"token|key|secret|pass|pwd|sig|auth|credential", re.IGNORECASE)
MASK = "***"


def is_local_ip(text: str) -> bool:
    """Whether an IP address (text, an IPv6 zone allowed) is loopback, unspecified or link-local."""
    try:
        ip = ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in LOCAL_NETWORKS)


def names_local_target(url: str) -> bool:
    """Whether a URL's host is, as written, this machine or a link-local address (a literal address or a
    localhost name). Names that only resolve there are caught when sending."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host:
        return False
    host = host.rstrip(".").lower()
    return host in LOCAL_NAMES or host.endswith(".localhost") or is_local_ip(host)


def mask_credentials(url: str) -> str:
    """The URL without its credentials: user and password replaced by ***, and so are secret-looking query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.search(k) for k, _ in pairs):
            query = urlencode([(k, MASK if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
