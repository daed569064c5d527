"""The options that several commands declare alike: ``--json``, and the
``--allow-*-change``, ``--detach`` and ``--[no-]capture-tensorboard`` of the commands
that run a trial, with ``RUN_OPTIONS``, those of ``run`` that the prefix form lets come
before the command (``kleio --detach python train.py``)."""

import typer

JSON = typer.Option(False, "--json", help="Print JSON for scripts.")

ALLOW_CODE = typer.Option(
    False, "--allow-code-change", help="On changed code, branch the trial and run the branch."
)
ALLOW_ENV = typer.Option(
    False,
    "--allow-env-change",
    help="On a changed environment, branch the trial and run the branch.",
)
ALLOW_ANY = typer.Option(
    False, "--allow-any-change", help="On any change, branch the trial and run the branch."
)
DETACH = typer.Option(
    False, "--detach", "-d", help="Let the daemon run it: print the trial's id and return at once."
)
CAPTURE_TENSORBOARD = typer.Option(
    None,
    "--capture-tensorboard/--no-capture-tensorboard",
    help="Journal the trial's TensorBoard scalars (SummaryWriter.add_scalar) as "
    "statistics. Default: on, or capture_tensorboard in the configuration.",
    show_default=False,
)
RUN_OPTIONS = frozenset(
    {
        "--allow-code-change",
        "--allow-env-change",
        "--allow-any-change",
        "--detach",
        "-d",
        "--capture-tensorboard",
        "--no-capture-tensorboard",
    }
)
