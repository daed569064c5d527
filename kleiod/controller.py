"""The control socket: one request in, one reply out.

This is the one place where exceptions become error replies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kleio_client import protocol
from kleio_runtime.errors import RuntimeSetupError
from kleiod.errors import BadRequest, KleiodError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Any]


class Controller:
    def __init__(self, handlers: dict[str, Handler]) -> None:
        self._handlers = handlers
        self.refused = 0

    def handle(self, frame: bytes) -> bytes:
        req_id: Any = None
        try:
            message = protocol.unpack(frame)
            req_id = message.get("id")
            if message["t"] != protocol.REQUEST:
                raise BadRequest(f"expected a request, got {message['t']!r}")
            handler = self._handlers.get(str(message.get("cmd")))
            if handler is None:
                raise BadRequest(f"unknown command {message.get('cmd')!r}")
            args = message.get("args") or {}
            if not isinstance(args, dict):
                raise BadRequest("request arguments must be a map")
            return protocol.pack(protocol.reply(req_id, handler(args)))
        except protocol.ProtocolError as exc:
            self.refused += 1
            return protocol.pack(protocol.error_reply(req_id, protocol.E_VERSION, str(exc)))
        except (KleiodError, RuntimeSetupError) as exc:
            if isinstance(exc, BadRequest):
                self.refused += 1
            return protocol.pack(protocol.error_reply(req_id, exc.code, str(exc)))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            # OverflowError: a number the request carries does not fit (int(inf), or past
            # what the database stores).
            self.refused += 1
            return protocol.pack(
                protocol.error_reply(req_id, protocol.E_BAD_REQUEST, f"malformed request: {exc!r}")
            )
        except Exception as exc:  # the one logged catch-all of the request loop
            log.exception("request failed")
            return protocol.pack(protocol.error_reply(req_id, protocol.E_INTERNAL, repr(exc)))
