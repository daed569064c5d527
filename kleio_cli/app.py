"""The ``kleio`` command.

``kleio CMD ARGS...`` is ``kleio run CMD ARGS...`` whenever CMD is not a
kleio subcommand; ``kleio run -- CMD`` runs a command named like one.
"""

from __future__ import annotations

import gc
import os
import sys
from enum import Enum
from typing import Any, Optional

import typer

from kleio_cli.errors import reported
from kleio_client.version import __version__

app = typer.Typer(
    name="kleio",
    help="Kleio: every run of your training script becomes a trial in a journal.\n\n"
    "Prefix a command: `kleio python train.py --lr 0.1`.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
)
daemon_app = typer.Typer(help="Start, stop and inspect kleiod, the per-user daemon.",
                         no_args_is_help=True)
app.add_typer(daemon_app, name="daemon")
artifact_app = typer.Typer(help="Get one artifact of a trial.", no_args_is_help=True)
app.add_typer(artifact_app, name="artifact")

_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True,
                 "allow_interspersed_args": False}
JSON = typer.Option(False, "--json", help="Print JSON for scripts.")


def _version(value: bool) -> None:
    if value:
        print(f"kleio {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Kleio: every run of your training script becomes a trial in a journal."""


ALLOW_CODE = typer.Option(False, "--allow-code-change",
                          help="On changed code, branch the trial and run the branch.")
ALLOW_ENV = typer.Option(False, "--allow-env-change",
                         help="On a changed environment, branch the trial and run the branch.")
ALLOW_ANY = typer.Option(False, "--allow-any-change",
                         help="On any change, branch the trial and run the branch.")
DETACH = typer.Option(False, "--detach", "-d",
                      help="Let the daemon run it: print the trial's id and return at once.")
RUN_OPTIONS = frozenset({"--allow-code-change", "--allow-env-change", "--allow-any-change",
                         "--detach", "-d"})


def _run_options(code: bool, env: bool, any_change: bool, detach: bool) -> Any:
    from kleio_cli.run import RunOptions

    return RunOptions(allow_code_change=code or any_change, allow_env_change=env or any_change,
                      detach=detach)


@app.command(context_settings=_PASS_THROUGH)
def run(command: list[str] = typer.Argument(..., help="The command to run as a trial, or a "
                                             "trial id to resume."),
        allow_code_change: bool = ALLOW_CODE, allow_env_change: bool = ALLOW_ENV,
        allow_any_change: bool = ALLOW_ANY, detach: bool = DETACH,
        tag: list[str] = typer.Option([], "--tag", help="Tag the trial; repeat for several.")
        ) -> None:
    """Run COMMAND as a trial (resuming it if it ran before). Same as `kleio COMMAND`."""
    import dataclasses

    from kleio_cli.run import run_command

    options = dataclasses.replace(_run_options(allow_code_change, allow_env_change,
                                               allow_any_change, detach), tags=tuple(tag))
    with reported():
        code = run_command(command, options)
    raise typer.Exit(code)


@app.command("exec")
def exec_(trial: str = typer.Argument(..., help="Trial id or unique prefix."),
          allow_code_change: bool = ALLOW_CODE, allow_env_change: bool = ALLOW_ENV,
          allow_any_change: bool = ALLOW_ANY, detach: bool = DETACH) -> None:
    """Resume a trial (or a branch) by id, checking its code and environment first."""
    from kleio_cli.run import exec_trial

    with reported():
        code = exec_trial(trial, _run_options(allow_code_change, allow_env_change,
                                              allow_any_change, detach))
    raise typer.Exit(code)


@app.command("ls")
def ls_(status: list[str] = typer.Option([], "--status", help="Only trials with this "
                                          "status; repeat for several."),
        tree: bool = typer.Option(False, "--tree", help="Draw branch trees: each branch "
                                  "under its parent."),
        tag: list[str] = typer.Option([], "--tag", help="Only trials with this tag; repeat "
                                      "for several (all must be there)."),
        where: list[str] = typer.Option([], "--where", help="An option of the command "
                                        "line: lr>0.01, batch_size=32 (no dashes); repeat "
                                        "for several."),
        as_json: bool = JSON) -> None:
    """List the trials."""
    from kleio_cli import listing
    from kleiod.states import ALL

    unknown = [s for s in status if s not in ALL]
    if unknown:
        raise typer.BadParameter(f"{unknown[0]!r} is not a status: {', '.join(ALL)}",
                                 param_hint="--status")
    with reported():
        listing.ls(as_json, tuple(status), tree, tuple(tag), tuple(where))


@app.command()
def info(trial: str = typer.Argument(..., help="Trial id or unique prefix."),
         as_json: bool = JSON) -> None:
    """Show a trial: command, status, executions, artifacts."""
    from kleio_cli.info import info as show

    with reported():
        show(trial, as_json)


class Stream(str, Enum):
    stdout = "stdout"
    stderr = "stderr"


@app.command()
def cat(trial: str = typer.Argument(..., help="Trial id or unique prefix."),
        stream: Optional[Stream] = typer.Option(None, help="Only this stream."),
        raw: bool = typer.Option(False, "--raw", help="The bytes as written, progress-bar "
                                 "rewrites (carriage returns) included.")) -> None:
    """Print the captured output of every execution of a trial, in order."""
    from kleio_cli import journal

    with reported():
        journal.cat(trial, None if stream is None else stream.value, raw)


@app.command()
def tail(trial: str = typer.Argument(..., help="Trial id or unique prefix."),
         lines: str = typer.Option("10", "-n", "--lines",
                                   help="How many last lines (rows with --stats), or 'all'."),
         follow: bool = typer.Option(False, "-f", "--follow",
                                     help="Then follow it live until the trial ends."),
         statistics: bool = typer.Option(False, "--stats",
                                         help="The statistics, as rows of a table.")) -> None:
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


@app.command()
def stats(trial: str = typer.Argument(..., help="Trial id or unique prefix."),
          sort: Optional[str] = typer.Option(None, "--sort", help="Sort by this key."),
          where: list[str] = typer.Option(
              [], "--where", help="KEY=VALUE, KEY!=VALUE, KEY<VALUE, KEY<=VALUE, KEY>VALUE or "
              "KEY>=VALUE (e.g. epoch>=10); repeat for several, all must hold."),
          keys: Optional[str] = typer.Option(None, "--keys",
                                             help="Only these keys, in this order: K1,K2."),
          form: Form = typer.Option(Form.table, "--format", help="table, csv or json."),
          all_executions: bool = typer.Option(
              False, "--all-executions",
              help="Also the records that resumes superseded (marked * in EXEC)."),
          as_json: bool = JSON) -> None:
    """Show the statistics of a trial's effective history (inherited ones included)."""
    from kleio_cli import journal

    chosen = tuple(k.strip() for k in keys.split(",") if k.strip()) if keys else ()
    with reported():
        journal.stats(journal.StatsQuery(trial, sort, tuple(where), chosen,
                                         "json" if as_json else form.value, all_executions))


@app.command("tag")
def tag_(trial: str = typer.Argument(..., help="Trial id or unique prefix."),
         names: list[str] = typer.Argument(..., help="Tags to add (or remove)."),
         remove: bool = typer.Option(False, "--remove", help="Remove these tags instead."),
         as_json: bool = JSON) -> None:
    """Add tags to a trial (or remove them); `kleio ls --tag NAME` finds them."""
    from kleio_cli import listing

    with reported():
        listing.tag(trial, names, remove, as_json)


@app.command()
def plot(trials: list[str] = typer.Argument(..., help="Trial ids (a branch beside its "
                                            "parent leaves it at the branch point)."),
         y: str = typer.Option(..., "--y", help="The statistic to draw."),
         x: Optional[str] = typer.Option(None, "--x", help="The key along x (default: the "
                                         "record's rank)."),
         where: list[str] = typer.Option([], "--where", help="KEY=VALUE, KEY<VALUE...: "
                                         "only those records; repeat for several."),
         output: Optional[str] = typer.Option(None, "-o", "--output",
                                              help="Write a PNG there (needs matplotlib)."),
         width: int = typer.Option(72, "--width", help="Terminal chart columns."),
         height: int = typer.Option(20, "--height", help="Terminal chart rows.")) -> None:
    """Draw a statistic of one or more trials: in the terminal, or as a PNG."""
    from kleio_cli.plot import PlotRequest
    from kleio_cli.plot import plot as draw

    with reported():
        draw(PlotRequest(tuple(trials), y, x, tuple(where), output, width, height))


@app.command()
def compare(trials: list[str] = typer.Argument(..., help="Two trial ids or more."),
            keys: Optional[str] = typer.Option(None, "--stats", help="Only these statistics: "
                                               "K1,K2 (default: all of them)."),
            best: Optional[str] = typer.Option(None, "--best", help="Show the record where "
                                               "KEY is lowest (or max:KEY, highest), not the "
                                               "last one."),
            as_json: bool = JSON) -> None:
    """One table of trials: the options that differ, and the last (or best) statistics."""
    from kleio_cli.compare import compare as compare_trials

    chosen = tuple(k.strip() for k in keys.split(",") if k.strip()) if keys else ()
    with reported():
        compare_trials(trials, chosen, best, as_json)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def branch(ctx: typer.Context,
           trial: str = typer.Argument(..., help="The parent trial's id or unique prefix."),
           timestamp: Optional[str] = typer.Option(
               None, "--timestamp", help="KEY=VALUE: branch after the last record where KEY "
               "is VALUE (else the greatest value below); default: the end of the history."),
           allow_code_change: bool = ALLOW_CODE, allow_env_change: bool = ALLOW_ENV,
           allow_any_change: bool = ALLOW_ANY, detach: bool = DETACH) -> None:
    """Branch a trial at a point of its history and run the child with changed OPTIONS.

    Example: kleio branch 3f2a --timestamp epoch=10 --lr 0.01
    """
    from kleio_cli.branch import branch_command

    with reported():
        code = branch_command(trial, timestamp, list(ctx.args),
                              _run_options(allow_code_change, allow_env_change,
                                           allow_any_change, detach))
    raise typer.Exit(code)


@app.command()
def pdb(trial: str = typer.Argument(..., help="Trial id or unique prefix.")) -> None:
    """Run a trial's command under the Python debugger, in the foreground.

    It stops at the first line and enters post-mortem on an uncaught exception. What the
    debugged run logs goes to a scratch trial, never into the trial's history.
    """
    from kleio_cli.debug import pdb_command

    with reported():
        code = pdb_command(trial)
    raise typer.Exit(code)


@app.command()
def diff(a: str = typer.Argument(..., help="Trial id (or ID:N for its execution N)."),
         b: str = typer.Argument(..., help="Trial id (or ID:N for its execution N)."),
         as_json: bool = JSON) -> None:
    """What differs between two trials (or executions): configuration, code, environment."""
    from kleio_cli.info import diff as differences

    with reported():
        differences(a, b, as_json)


@app.command("artifacts")
def artifacts_(trial: str = typer.Argument(..., help="Trial id or unique prefix."),
               as_json: bool = JSON) -> None:
    """List the artifacts of a trial's effective history (inherited ones included)."""
    from kleio_cli import artifacts

    with reported():
        artifacts.artifacts(trial, as_json)


@artifact_app.command("get")
def artifact_get(trial: str = typer.Argument(..., help="Trial id or unique prefix."),
                 filename: str = typer.Argument(..., help="The artifact's file name."),
                 where: list[str] = typer.Option([], "--where", help="KEY=VALUE of its "
                                                 "metadata; repeat for several."),
                 output: Optional[str] = typer.Option(None, "-o", "--output",
                                                      help="Where to write it.")) -> None:
    """Write the latest matching artifact to a file (default: its name, here)."""
    from kleio_cli import artifacts

    with reported():
        artifacts.artifact_get(trial, filename, where, output)


@app.command("export")
def export_(ids: Optional[list[str]] = typer.Argument(None, help="Trial ids (default: all); "
                                                      "a branch brings its ancestors."),
            output: str = typer.Option(..., "-o", "--output", help="The file to write.")) -> None:
    """Write trials with their journals, branches and artifacts to a file."""
    from kleio_cli import journal

    with reported():
        journal.export(ids or [], output)


@app.command("import")
def import_(path: str = typer.Argument(..., help="A file written by `kleio export`.")) -> None:
    """Add the trials of an export file to this journal (those it has are kept as they are)."""
    from kleio_cli import journal

    with reported():
        journal.import_(path)


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


def command_names() -> set[str]:
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    return names | {g.name for g in app.registered_groups if g.name}


def _standard_streams() -> None:
    """A caller may close stdout or stderr (`kleio ... >&-`): write those to /dev/null."""
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115


def main() -> None:
    # A short-lived process that may read a whole journal: reference counting frees what
    # it drops; the cyclic collector would only rescan the heap (2x slower on 1M records).
    gc.disable()
    _standard_streams()
    argv = sys.argv[1:]
    first = next((a for a in argv if a not in RUN_OPTIONS), None)
    if first is not None and not first.startswith("-") and first not in command_names():
        argv = ["run", *argv]  # the prefix form, options of `run` included
    try:
        app(args=argv, prog_name="kleio")
    except SystemExit as exc:
        _exit_now(exc.code)


def _exit_now(code: object) -> None:
    """Exit without freeing what the command read (a million records take 0.5 s to free):
    the output is flushed, and the process holds nothing else that needs closing."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a reader that went away (`kleio stats | head`)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    os._exit(status)
