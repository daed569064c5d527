"""The commands that delete from the journal, as typer declares them: ``rm`` (trials)
and ``gc`` (the artifacts' bytes no trial references any more).  Each hands over to
``removal``, imported when the command runs so that ``kleio --help`` stays fast."""

from __future__ import annotations

import typer

from kleio_cli.errors import reported
from kleio_cli.options import JSON


def rm(
    trials: list[str] = typer.Argument(
        ..., metavar="TRIAL...", help="Trial ids or unique prefixes."
    ),
    with_branches: bool = typer.Option(
        False, "--with-branches", help="Also remove their branches (which read their history)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove without asking."),
    as_json: bool = JSON,
) -> None:
    """Remove trials with everything they logged; asks first unless --yes."""
    from kleio_cli import removal

    with reported():
        removal.rm(trials, with_branches, yes, as_json)


def gc(
    grace: str = typer.Option(
        "1h",
        "--grace",
        metavar="DURATION",
        help="Keep bytes stored within this long (30s, 10m, 1h, 2d; 0 for none): a running "
        "trial may be about to record them.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be freed; free nothing."),
    as_json: bool = JSON,
) -> None:
    """Delete the artifacts' bytes that no trial references (after `kleio rm`)."""
    from kleio_cli import removal

    seconds = removal.seconds(grace)
    with reported():
        removal.gc(seconds, dry_run, as_json)
