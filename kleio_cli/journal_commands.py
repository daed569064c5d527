"""The commands that read the journal (and tag, export and import it), as typer
declares them: ``ls``, ``info``, ``cat``, ``tail``, ``stats``, ``tag``, ``plot``,
``compare``, ``diff``, ``artifacts``, ``export``, ``import``, and the ``artifact`` group
(``artifact get``). Each hands over to the module that owns its work (``listing``,
``info``, ``journal``, ``tail``, ``plot``, ``compare``, ``artifacts``), imported when the
command runs so that ``kleio --help`` stays fast."""

from __future__ import annotations

from enum import Enum
from typing import Optional

import typer

from kleio_cli.errors import reported
from kleio_cli.options import JSON
from kleio_client import protocol

artifact_app = typer.Typer(help="Get one artifact of a trial.", no_args_is_help=True)


def ls_(
    status: list[str] = typer.Option(
        [], "--status", help="Only trials with this status; repeat for several."
    ),
    tree: bool = typer.Option(
        False, "--tree", help="Draw branch trees: each branch under its parent."
    ),
    tag: list[str] = typer.Option(
        [], "--tag", help="Only trials with this tag; repeat for several (all must be there)."
    ),
    where: list[str] = typer.Option(
        [],
        "--where",
        help="An option of the command "
        "line: lr>0.01, batch_size=32 (no dashes); repeat "
        "for several.",
    ),
    as_json: bool = JSON,
) -> None:
    """List the trials."""
    from kleio_cli import listing

    unknown = [s for s in status if s not in protocol.STATUSES]
    if unknown:
        raise typer.BadParameter(
            f"{unknown[0]!r} is not a status: {', '.join(protocol.STATUSES)}", param_hint="--status"
        )
    with reported():
        listing.ls(as_json, tuple(status), tree, tuple(tag), tuple(where))


def info(
    trial: str = typer.Argument(..., metavar="TRIAL", help="Trial id or unique prefix."),
    as_json: bool = JSON,
) -> None:
    """Show a trial: command, status, executions, artifacts."""
    from kleio_cli.info import info as show

    with reported():
        show(trial, as_json)


class Stream(str, Enum):
    stdout = "stdout"
    stderr = "stderr"


def cat(
    trial: str = typer.Argument(..., metavar="TRIAL", help="Trial id or unique prefix."),
    stream: Optional[Stream] = typer.Option(None, help="Only this stream."),
    raw: bool = typer.Option(
        False,
        "--raw",
        help="The bytes as written, progress-bar rewrites (carriage returns) included.",
    ),
) -> None:
    """Print the captured output of every execution of a trial, in order."""
    from kleio_cli import journal

    with reported():
        journal.cat(trial, None if stream is None else stream.value, raw)


def tail(
    trial: str = typer.Argument(..., metavar="TRIAL", help="Trial id or unique prefix."),
    lines: str = typer.Option(
        "10", "-n", "--lines", help="How many last lines (rows with --stats), or 'all'."
    ),
    follow: bool = typer.Option(
        False, "-f", "--follow", help="Then follow it live until the trial ends."
    ),
    statistics: bool = typer.Option(False, "--stats", help="The statistics, as rows of a table."),
) -> None:
    """Print the last lines of a trial's output; with -f, follow it live until it ends."""
    from kleio_cli.tail import TailOptions
    from kleio_cli.tail import tail as tail_trial

    with reported():
        tail_trial(TailOptions(trial, _count(lines), follow, statistics))


def _count(text: str) -> int | None:
    if text == "all":
        return None
    if not text.isdigit():
        raise typer.BadParameter(f"{text!r} is not a number of lines or 'all'", param_hint="-n")
    return int(text)


class Form(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def stats(
    trial: str = typer.Argument(..., metavar="TRIAL", help="Trial id or unique prefix."),
    sort: Optional[str] = typer.Option(None, "--sort", help="Sort by this key."),
    where: list[str] = typer.Option(
        [],
        "--where",
        help="KEY=VALUE, KEY!=VALUE, KEY<VALUE, KEY<=VALUE, KEY>VALUE or "
        "KEY>=VALUE (e.g. epoch>=10); repeat for several, all must hold.",
    ),
    keys: Optional[str] = typer.Option(
        None, "--keys", help="Only these keys, in this order: K1,K2."
    ),
    form: Form = typer.Option(Form.table, "--format", help="table, csv or json."),
    all_executions: bool = typer.Option(
        False,
        "--all-executions",
        help="Also the records that resumes superseded (marked * in EXEC).",
    ),
    as_json: bool = JSON,
) -> None:
    """Show the statistics of a trial's effective history (inherited ones included)."""
    from kleio_cli import journal

    chosen = tuple(k.strip() for k in keys.split(",") if k.strip()) if keys else ()
    with reported():
        journal.stats(
            journal.StatsQuery(
                trial, sort, tuple(where), chosen, "json" if as_json else form.value, all_executions
            )
        )


def tag_(
    trial: str = typer.Argument(..., metavar="TRIAL", help="Trial id or unique prefix."),
    names: list[str] = typer.Argument(..., metavar="TAG...", help="Tags to add (or remove)."),
    remove: bool = typer.Option(False, "--remove", help="Remove these tags instead."),
    as_json: bool = JSON,
) -> None:
    """Add tags to a trial (or remove them); `kleio ls --tag NAME` finds them."""
    from kleio_cli import listing

    with reported():
        listing.tag(trial, names, remove, as_json)


def plot(
    trials: list[str] = typer.Argument(
        ...,
        metavar="TRIAL...",
        help="Trial ids (a branch beside its parent leaves it at the branch point).",
    ),
    y: str = typer.Option(..., "--y", help="The statistic to draw."),
    x: Optional[str] = typer.Option(
        None, "--x", help="The key along x (default: the record's rank)."
    ),
    where: list[str] = typer.Option(
        [], "--where", help="KEY=VALUE, KEY<VALUE...: only those records; repeat for several."
    ),
    output: Optional[str] = typer.Option(
        None, "-o", "--output", help="Write a PNG there (needs matplotlib)."
    ),
    width: int = typer.Option(72, "--width", help="Terminal chart columns."),
    height: int = typer.Option(20, "--height", help="Terminal chart rows."),
) -> None:
    """Draw a statistic of one or more trials: in the terminal, or as a PNG."""
    from kleio_cli.plot import PlotRequest
    from kleio_cli.plot import plot as draw

    with reported():
        draw(PlotRequest(tuple(trials), y, x, tuple(where), output, width, height))


def compare(
    trials: list[str] = typer.Argument(..., metavar="TRIAL...", help="Two trial ids or more."),
    keys: Optional[str] = typer.Option(
        None, "--stats", help="Only these statistics: K1,K2 (default: all of them)."
    ),
    best: Optional[str] = typer.Option(
        None,
        "--best",
        help="Show the record where KEY is lowest (or max:KEY, highest), not the last one.",
    ),
    as_json: bool = JSON,
) -> None:
    """One table of trials: the options that differ, and the last (or best) statistics."""
    from kleio_cli.compare import compare as compare_trials

    chosen = tuple(k.strip() for k in keys.split(",") if k.strip()) if keys else ()
    with reported():
        compare_trials(trials, chosen, best, as_json)


def diff(
    a: str = typer.Argument(..., metavar="A", help="Trial id (or ID:N for its execution N)."),
    b: Optional[str] = typer.Argument(
        None,
        metavar="[B]",
        help="Trial id (or ID:N for its execution N); none: what would run here now.",
    ),
    as_json: bool = JSON,
) -> None:
    """What differs between two trials (or executions), or between a trial and what would
    run here now: configuration, code, environment."""
    from kleio_cli.info import diff as differences

    with reported():
        differences(a, b, as_json)


def artifacts_(
    trial: str = typer.Argument(..., metavar="TRIAL", help="Trial id or unique prefix."),
    as_json: bool = JSON,
) -> None:
    """List the artifacts of a trial's effective history (inherited ones included)."""
    from kleio_cli import artifacts

    with reported():
        artifacts.artifacts(trial, as_json)


@artifact_app.command("get")
def artifact_get(
    trial: str = typer.Argument(..., metavar="TRIAL", help="Trial id or unique prefix."),
    filename: str = typer.Argument(..., metavar="FILENAME", help="The artifact's file name."),
    where: list[str] = typer.Option(
        [], "--where", help="KEY=VALUE of its metadata; repeat for several."
    ),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Where to write it."),
) -> None:
    """Write the latest matching artifact to a file (default: its name, here)."""
    from kleio_cli import artifacts

    with reported():
        artifacts.artifact_get(trial, filename, where, output)


def export_(
    ids: Optional[list[str]] = typer.Argument(
        None, metavar="[TRIAL]...", help="Trial ids (default: all); a branch brings its ancestors."
    ),
    output: str = typer.Option(..., "-o", "--output", help="The file to write."),
) -> None:
    """Write trials with their journals, branches and artifacts to a file."""
    from kleio_cli import journal

    with reported():
        journal.export(ids or [], output)


def import_(
    path: str = typer.Argument(..., metavar="FILE", help="A file written by `kleio export`."),
) -> None:
    """Add the trials of an export file to this journal (those it has are kept as they are)."""
    from kleio_cli import journal

    with reported():
        journal.import_(path)
