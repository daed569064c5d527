"""A synchronous request/reply client for the daemon's control socket.

Used by the CLI, the supervisor and the Python read API.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import zmq

from kleio_client import protocol
from kleio_client.errors import DaemonUnavailable, KleioError, RequestRefused

_ids = itertools.count(1)
# The longest single wait in a poll: a Ctrl-C that comes just before the poll blocks
# (Python has noted it, but runs its handler only once the poll returns) waits no longer.
POLL_SLICE = 0.25


class ControlClient:
    def __init__(self, endpoint: str, timeout: float = 30.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(endpoint)
        self._waiting: set[int] = set()  # submitted, not yet taken by result()
        self._answers: dict[int, dict[str, Any]] = {}  # answered, not yet taken

    def call(self, cmd: str, timeout: float | None = None, **args: Any) -> Any:
        """Send one request and return its result, or raise what the daemon said."""
        return self.result(self.submit(cmd, **args), cmd, timeout)

    def submit(self, cmd: str, **args: Any) -> int:
        """Send a request without waiting for its answer (several may be in flight; the
        daemon answers in order): its id, for :meth:`result`."""
        req_id = next(_ids)
        self._socket.send(protocol.pack(protocol.request(req_id, cmd, args)))
        self._waiting.add(req_id)
        return req_id

    def result(self, req_id: int, cmd: str = "the request", timeout: float | None = None) -> Any:
        """The result of a submitted request, or raise what the daemon said."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while req_id not in self._answers:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._waiting.discard(req_id)  # a late answer is dropped
                raise DaemonUnavailable(
                    f"kleiod did not answer {cmd!r} in time; check `kleio daemon status`"
                )
            if not self._socket.poll(int(min(remaining, POLL_SLICE) * 1000) + 1, zmq.POLLIN):
                continue
            try:
                reply = protocol.unpack(self._socket.recv(), limit=None)
            except protocol.ProtocolError as exc:
                raise KleioError(f"kleio: unreadable reply from kleiod: {exc}") from None
            if isinstance(reply.get("id"), int) and reply["id"] in self._waiting:
                self._answers[reply["id"]] = reply
        self._waiting.discard(req_id)
        reply = self._answers.pop(req_id)
        if not reply.get("ok"):
            error = reply.get("error") or {}
            raise RequestRefused(str(error.get("code")), str(error.get("message")))
        return reply.get("result")

    def close(self) -> None:
        self._socket.close(0)
        self._context.term()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
