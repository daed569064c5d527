"""The CLI's errors and the one place that maps them to exit statuses.

CliError                a failure to report on one line, with an exit status
(and, from kleio_client.errors)
RequestRefused          mapped by its wire code through EXIT_STATUS
DaemonUnavailable       EXIT_UNAVAILABLE
(and, from kleio_runtime.errors, for configuration read by the CLI)
RuntimeSetupError       mapped by its code through EXIT_STATUS
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
import zmq

from kleio_client import protocol
from kleio_client.errors import DaemonUnavailable, KleioError, RequestRefused
from kleio_runtime.errors import RuntimeSetupError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_ALREADY_RUNNING = 4
EXIT_UNAVAILABLE = 5
EXIT_STORAGE = 6
EXIT_CHANGED = 7
EXIT_NOT_EXECUTABLE = 126  # as a shell says it
EXIT_NOT_FOUND_COMMAND = 127

EXIT_STATUS = {
    protocol.E_NOT_FOUND: EXIT_NOT_FOUND,
    protocol.E_AMBIGUOUS: EXIT_NOT_FOUND,
    protocol.E_ALREADY_RUNNING: EXIT_ALREADY_RUNNING,
    protocol.E_COMPLETED: 0,
    protocol.E_CHANGED: EXIT_CHANGED,
    protocol.E_BAD_REQUEST: EXIT_USAGE,
    protocol.E_VERSION: EXIT_FAILURE,
    protocol.E_STORAGE: EXIT_STORAGE,
    protocol.E_INTERNAL: EXIT_FAILURE,
}


EXIT_INTERRUPTED = 128 + 2  # a reader stopped with Ctrl-C, as a shell reports SIGINT


class CliError(Exception):
    def __init__(self, message: str, exit_status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_status = exit_status


def exit_status(exc: BaseException) -> int:
    if isinstance(exc, CliError):
        return exc.exit_status
    if isinstance(exc, (RequestRefused, RuntimeSetupError)):
        return EXIT_STATUS.get(exc.code, EXIT_FAILURE)
    if isinstance(exc, DaemonUnavailable):
        return EXIT_UNAVAILABLE
    return EXIT_FAILURE


def fail(exc: BaseException) -> NoReturn:
    message = str(exc)
    if message:
        print(message if message.startswith("kleio") else f"kleio: {message}", file=sys.stderr)
    raise typer.Exit(exit_status(exc))


@contextmanager
def reported() -> Iterator[None]:
    """Turn Kleio's errors into one line on stderr and the mapped exit status."""
    try:
        yield
    except (CliError, KleioError, RuntimeSetupError) as exc:
        fail(exc)
    except BrokenPipeError:  # the reader has all it wanted (`kleio stats ID | head`)
        raise typer.Exit(0) from None
    except (OSError, zmq.ZMQError) as exc:
        fail(CliError(f"kleio: {exc}"))
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
