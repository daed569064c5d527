"""The ``kleio`` command: the typer application, the order of its commands, and its
entry point, ``main``.

``kleio CMD ARGS...`` is ``kleio run CMD ARGS...`` whenever CMD is not a
kleio subcommand; ``kleio run -- CMD`` runs a command named like one.
The commands are declared in ``run_commands``, ``journal_commands``,
``removal_commands``, ``view_commands`` and ``daemon_commands``; ``prefix_form``
tells a mistyped subcommand from a program to run.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable

import typer

from kleio_cli import (
    daemon_commands,
    journal_commands,
    removal_commands,
    run_commands,
    view_commands,
)
from kleio_cli.options import RUN_OPTIONS
from kleio_client.version import __version__

app = typer.Typer(
    name="kleio",
    help="Kleio: every run of your training script becomes a trial in a journal.\n\n"
    "Prefix a command to run it as a trial, or to resume it if it ran before:\n\n"
    "\b\n"
    "  kleio [-d] [--allow-code-change | --allow-env-change | --allow-any-change]\n"
    "        [--no-capture-tensorboard] python train.py --lr 0.1\n\n"
    "-d (--detach) lets the daemon run it and prints its id; --allow-*-change branches a\n"
    "trial whose code or environment changed instead of refusing to resume it; the same\n"
    "as `kleio run OPTIONS COMMAND...`. To run a program named like a command below,\n"
    "write `kleio run -- PROGRAM ...`. `kleio COMMAND --help` says how to use each.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"kleio {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Kleio: every run of your training script becomes a trial in a journal."""


# The commands, in the order `kleio --help` lists them (typer lists the groups after them).
_COMMANDS: dict[str, Callable[..., None]] = {
    "run": run_commands.run,
    "exec": run_commands.exec_,
    "ls": journal_commands.ls_,
    "info": journal_commands.info,
    "cat": journal_commands.cat,
    "tail": journal_commands.tail,
    "stats": journal_commands.stats,
    "tag": journal_commands.tag_,
    "plot": journal_commands.plot,
    "compare": journal_commands.compare,
    "branch": run_commands.branch,
    "pdb": run_commands.pdb,
    "diff": journal_commands.diff,
    "artifacts": journal_commands.artifacts_,
    "ui": view_commands.ui,
    "export": journal_commands.export_,
    "import": journal_commands.import_,
    "rm": removal_commands.rm,
    "gc": removal_commands.gc,
}
_PARSING = {"run": run_commands.PASS_THROUGH, "branch": run_commands.EXTRA_OPTIONS}


def _register() -> None:
    for name, callback in _COMMANDS.items():
        app.command(
            name,
            context_settings=_PARSING.get(name),
            short_help=_summary(callback),
        )(callback)
    app.add_typer(daemon_commands.daemon_app, name="daemon")
    app.add_typer(journal_commands.artifact_app, name="artifact")


def _summary(callback: Callable[..., None]) -> str | None:
    """The first sentence of a command's help, whole (click cuts it at 45 characters)."""
    text = " ".join((callback.__doc__ or "").strip().split("\n\n")[0].split())
    return text or None


_register()


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
        _refuse_a_typo(first)
        argv = ["run", *argv]  # the prefix form, options of `run` included
    try:
        app(args=argv, prog_name="kleio")
    except SystemExit as exc:
        _exit_now(exc.code)


def _refuse_a_typo(first: str) -> None:
    """``kleio stat ID`` is a mistyped ``kleio stats``, not a trial of /usr/bin/stat."""
    from kleio_cli import prefix_form
    from kleio_cli.errors import EXIT_USAGE

    meant = prefix_form.typo(first, command_names())
    if meant is not None:
        print(prefix_form.refusal(first, meant), file=sys.stderr)
        _exit_now(EXIT_USAGE)


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
