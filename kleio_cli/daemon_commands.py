"""The ``kleio daemon`` command group, as typer declares it: ``start``, ``stop``,
``status`` and ``install-service``, each handing over to ``kleio_cli.daemon`` or
``kleio_cli.service``, imported when the command runs so that ``kleio --help`` stays
fast."""

from __future__ import annotations

import typer

from kleio_cli.errors import reported
from kleio_cli.options import JSON

daemon_app = typer.Typer(
    help="Start, stop and inspect kleiod, the per-user daemon.", no_args_is_help=True
)


@daemon_app.command("start")
def daemon_start() -> None:
    """Start kleiod in the background (if it is not running)."""
    from kleio_cli import daemon

    with reported():
        daemon.start()


@daemon_app.command("stop")
def daemon_stop() -> None:
    """Stop kleiod; running trials are not touched."""
    from kleio_cli import daemon

    with reported():
        daemon.stop()


@daemon_app.command("status")
def daemon_status(as_json: bool = JSON) -> None:
    """Show whether kleiod runs, its pid, version, database and uptime."""
    from kleio_cli import daemon

    with reported():
        daemon.status(as_json)


@daemon_app.command("install-service")
def daemon_install_service(
    force: bool = typer.Option(False, "--force", help="Replace a different unit file."),
) -> None:
    """Write kleiod's systemd user unit and print how to enable it (runs no systemctl)."""
    from kleio_cli import service

    with reported():
        service.install(force)
