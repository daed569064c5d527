"""``kleio daemon start|stop|status``."""

from __future__ import annotations

import sys
import time

from kleio_cli import render
from kleio_cli.connection import connect, control_client
from kleio_cli.errors import EXIT_UNAVAILABLE, CliError
from kleio_runtime import lock
from kleio_runtime.config import resolve

STOP_TIMEOUT = 30.0


def start() -> None:
    config = resolve()
    with connect(config) as client:
        status = client.call("status")
    print(f"kleiod is running (pid {status['pid']}, database {status['database']})")


def stop() -> None:
    config = resolve()
    if not lock.is_held(config.runtime_dir):
        print("kleiod is not running")
        return
    with control_client(config, timeout=5) as client:
        pid = client.call("stop")["pid"]
    deadline = time.monotonic() + STOP_TIMEOUT
    while lock.is_held(config.runtime_dir):
        if time.monotonic() > deadline:
            raise CliError(f"kleiod (pid {pid}) did not stop within {STOP_TIMEOUT:.0f} s")
        time.sleep(0.02)
    print(f"kleiod stopped (pid {pid})")


def status(as_json: bool) -> None:
    config = resolve()
    if not lock.is_held(config.runtime_dir):
        if as_json:
            render.print_json(
                {
                    "running": False,
                    "runtime_dir": str(config.runtime_dir),
                    "database": config.database_redacted,
                }
            )
        else:
            print("kleiod is not running; start it with `kleio daemon start`", file=sys.stderr)
        raise CliError("", EXIT_UNAVAILABLE)
    with connect(config, start=False, timeout=10, same_database=False) as client:
        info = client.call("status")
    info["running"] = True
    if as_json:
        render.print_json(info)
        return
    rows = [
        [key, info[key]]
        for key in (
            "pid",
            "version",
            "database",
            "runtime_dir",
            "uptime",
            "records_committed",
            "duplicates_ignored",
            "refused_messages",
            "refused_records",
            "out_of_order_dropped",
            "database_error",
            "records_held",
            "records_spilled",
        )
    ]
    rows[4][1] = f"{info['uptime']:.0f} s"
    print(render.table(["", ""], rows).split("\n", 1)[1])
