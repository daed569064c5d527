"""The commands that run a trial, as typer declares them: ``run``, ``exec``, ``branch``
and ``pdb``, their arguments and options, and how typer must parse them (``PASS_THROUGH``,
``EXTRA_OPTIONS``). Each hands over to its implementation (``kleio_cli.run``, ``branch``,
``debug``), imported when the command runs so that ``kleio --help`` stays fast."""

from __future__ import annotations

from typing import Any, Optional

import typer

from kleio_cli.errors import reported
from kleio_cli.options import ALLOW_ANY, ALLOW_CODE, ALLOW_ENV, CAPTURE_TENSORBOARD, DETACH

# run's: everything after COMMAND is COMMAND's, its options included.
PASS_THROUGH = {
    "allow_extra_args": True,
    "ignore_unknown_options": True,
    "allow_interspersed_args": False,
}
# branch's: the options it does not know are the child's changed options.
EXTRA_OPTIONS = {"allow_extra_args": True, "ignore_unknown_options": True}


def _run_options(
    code: bool, env: bool, any_change: bool, detach: bool, capture_tensorboard: bool | None
) -> Any:
    from kleio_cli.run import RunOptions

    return RunOptions(
        allow_code_change=code or any_change,
        allow_env_change=env or any_change,
        detach=detach,
        capture_tensorboard=capture_tensorboard,
    )


def run(
    command: list[str] = typer.Argument(
        ...,
        metavar="COMMAND [ARGS]...",
        help="The command to run as a trial, or a trial id to resume.",
    ),
    allow_code_change: bool = ALLOW_CODE,
    allow_env_change: bool = ALLOW_ENV,
    allow_any_change: bool = ALLOW_ANY,
    detach: bool = DETACH,
    tag: list[str] = typer.Option([], "--tag", help="Tag the trial; repeat for several."),
    capture_tensorboard: Optional[bool] = CAPTURE_TENSORBOARD,
) -> None:
    """Run COMMAND as a trial (resuming it if it ran before). Same as `kleio COMMAND`."""
    import dataclasses

    from kleio_cli.run import run_command

    options = dataclasses.replace(
        _run_options(
            allow_code_change, allow_env_change, allow_any_change, detach, capture_tensorboard
        ),
        tags=tuple(tag),
    )
    with reported():
        code = run_command(command, options)
    raise typer.Exit(code)


def exec_(
    trial: str = typer.Argument(..., metavar="TRIAL", help="Trial id or unique prefix."),
    allow_code_change: bool = ALLOW_CODE,
    allow_env_change: bool = ALLOW_ENV,
    allow_any_change: bool = ALLOW_ANY,
    detach: bool = DETACH,
    capture_tensorboard: Optional[bool] = CAPTURE_TENSORBOARD,
) -> None:
    """Resume a trial (or a branch) by id, checking its code and environment first."""
    from kleio_cli.run import exec_trial

    with reported():
        code = exec_trial(
            trial,
            _run_options(
                allow_code_change, allow_env_change, allow_any_change, detach, capture_tensorboard
            ),
        )
    raise typer.Exit(code)


def branch(
    ctx: typer.Context,
    trial: str = typer.Argument(
        ..., metavar="TRIAL [--NAME VALUE]...", help="The parent trial's id or unique prefix."
    ),
    timestamp: Optional[str] = typer.Option(
        None,
        "--timestamp",
        help="KEY=VALUE: branch after the last record where KEY "
        "is VALUE (else the greatest value below); default: the end of the history.",
    ),
    allow_code_change: bool = ALLOW_CODE,
    allow_env_change: bool = ALLOW_ENV,
    allow_any_change: bool = ALLOW_ANY,
    detach: bool = DETACH,
    capture_tensorboard: Optional[bool] = CAPTURE_TENSORBOARD,
) -> None:
    """Branch a trial at a point of its history and run the child with changed options.

    Every `--NAME VALUE` (or `--NAME=VALUE`, or a flag) after TRIAL that is not one of the
    options below replaces or adds that option of the parent's command line; positional
    arguments cannot change.  The child reads the parent's history up to the branch point
    and runs from there, loading the checkpoint logged there.

    Example: kleio branch 3f2a --timestamp epoch=10 --lr 0.01 --batch-size 64
    """
    from kleio_cli.branch import branch_command

    with reported():
        code = branch_command(
            trial,
            timestamp,
            list(ctx.args),
            _run_options(
                allow_code_change, allow_env_change, allow_any_change, detach, capture_tensorboard
            ),
        )
    raise typer.Exit(code)


def pdb(
    trial: str = typer.Argument(..., metavar="TRIAL", help="Trial id or unique prefix."),
) -> None:
    """Run a trial's command under the Python debugger, in the foreground.

    It stops at the first line and enters post-mortem on an uncaught exception. What the
    debugged run logs goes to a scratch trial, never into the trial's history.
    """
    from kleio_cli.debug import pdb_command

    with reported():
        code = pdb_command(trial)
    raise typer.Exit(code)
