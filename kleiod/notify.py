"""Readiness for systemd (sd_notify), without libsystemd.

When ``NOTIFY_SOCKET`` is set (by a ``Type=notify`` unit), kleiod sends one
datagram of ``KEY=value`` lines to that AF_UNIX socket: ``READY=1`` once its
sockets are bound and it serves, ``STOPPING=1`` when it begins to stop.  The
socket is a filesystem path, or an abstract name written with a leading '@'.
A failure to notify is logged, never raised: the daemon serves whether or not
its service manager hears it.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

ENVIRONMENT_VARIABLE = "NOTIFY_SOCKET"
# A full receive queue would block a datagram send: never let it hold the daemon up.
SEND_TIMEOUT = 1.0


def ready(status: str) -> bool:
    """Tell the service manager that kleiod serves; whether the message was sent."""
    return notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS={_one_line(status)}")


def stopping(status: str = "stopping") -> bool:
    """Tell the service manager that kleiod has begun to stop."""
    return notify(f"STOPPING=1\nSTATUS={_one_line(status)}")


def notify(message: str) -> bool:
    """Send ``message`` to ``NOTIFY_SOCKET``; False when unset or when sending failed."""
    value = os.environ.get(ENVIRONMENT_VARIABLE, "")
    address = _address(value)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(SEND_TIMEOUT)
            sock.sendto(message.encode(), address)
    except OSError as exc:
        log.warning("cannot notify %s=%s: %s", ENVIRONMENT_VARIABLE, value, exc)
        return False
    return True


def _address(value: str) -> str | None:
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]  # Linux's abstract namespace
    if value.startswith("/"):
        return value
    log.warning(
        "%s=%s is neither a path nor an abstract socket ('@name'): not notifying",
        ENVIRONMENT_VARIABLE,
        value,
    )
    return None


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())
