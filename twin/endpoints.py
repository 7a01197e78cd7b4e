"""Which addresses the twin's rosbridge endpoint may bind: loopback only. rosbridge has no
authentication (no CURVE), and a real bridge lives on its robot's own cell network; the twin's
ZeroMQ sockets take any address under CURVE (``drivers/curve.py``)."""

from __future__ import annotations

from cellctl.drivers.curve import is_loopback


def check_loopback(host: str) -> None:
    if not is_loopback(host):
        raise ValueError(f"refusing to bind the rosbridge endpoint to {host!r}: it serves loopback only (127.0.0.1, "
                         f"::1), as rosbridge has no authentication")
