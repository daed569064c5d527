"""``kleio ui``, the web view of the journal, as typer declares it; the server (the
``kleio[ui]`` extra) is imported only when the command runs."""

from __future__ import annotations

import typer

from kleio_cli.errors import EXIT_USAGE, CliError, reported

UI_EXTRA = "pip install 'kleio[ui]'"


def ui(
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="The address to listen on "
        "(127.0.0.1: this machine only; reach it over SSH with "
        "`ssh -L PORT:127.0.0.1:PORT`).",
    ),
    port: int = typer.Option(0, "--port", help="The port (0: a free one)."),
    no_browser: bool = typer.Option(
        False, "--no-browser", help="Print the URL only; open no browser."
    ),
) -> None:
    """Browse the journal in a web page: trials, charts, live output, comparisons."""
    with reported():
        try:
            from kleio_cli.ui import server
        except ImportError as exc:
            raise CliError(
                f"kleio: `kleio ui` needs {exc.name or exc}, which is missing; "
                f"install the web view with {UI_EXTRA}",
                EXIT_USAGE,
            ) from None
        from kleio_runtime.config import resolve

        try:
            server.serve(resolve(), server.UiOptions(host, port, not no_browser))
        except OSError as exc:
            raise CliError(
                f"kleio: cannot serve on {host}:{port}: {exc.strerror or exc}; "
                "choose another --port or --host"
            ) from None
