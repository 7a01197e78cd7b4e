"""Which addresses the twin may bind. Kept free of pybullet and zmq so the CLI can refuse a bad
address before starting anything."""

from __future__ import annotations

import ipaddress


def check_loopback(host: str) -> None:
    """Refuse anything but loopback: there is no authentication until CURVE lands (DESIGN §9)."""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(
        f"refusing to bind {host!r}: the twin serves loopback addresses only (127.0.0.1, ::1) because "
        "ZeroMQ CURVE authentication is not implemented yet, and anyone reaching the port could move robots"
    )
