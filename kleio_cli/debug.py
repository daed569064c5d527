"""``kleio pdb``: a trial's command in the foreground under the Python debugger.

The debugged run is a *scratch* trial: a child of the trial at the end of
its history, so ``load_artifact`` finds the trial's checkpoints, while what
the run logs stays out of the trial's history (and out of ``kleio ls``).
Each session is a new scratch trial; code and environment may differ from
the trial's (that is what debugging is for).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid

from kleio_cli.capture.configuration import LAUNCHER_PROGRAMS, parse_command
from kleio_cli.capture.environment import interpreter_of
from kleio_cli.connection import connect
from kleio_cli.errors import EXIT_USAGE, CliError
from kleio_cli.redaction import check_runnable
from kleio_cli.run import RunOptions, run_spec, working_directory
from kleio_client import protocol
from kleio_runtime.config import resolve

ID_LENGTH = 32


def pdb_command(trial: str) -> int:
    with connect(resolve()) as client:
        parent = client.call("trial", id=trial)
        point = client.call("branch_point", id=parent["id"], key=None, value=None)
    check_runnable(parent["command"], parent["id"])
    argv = debugged(parent["command"])
    text = json.dumps([protocol.SCRATCH, parent["id"], uuid.uuid4().hex])
    scratch_id = hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]
    scratch = {
        "id": scratch_id,
        "root": scratch_id,
        "parent": parent["id"],
        "branch_kind": protocol.SCRATCH,
        "branch_point": point["branch_point"],
    }
    print(
        f"kleio: debugging trial {parent['id'][:12]} in scratch trial {scratch_id[:12]}: "
        "what it logs stays out of the trial's history",
        file=sys.stderr,
    )
    # Ctrl-C belongs to the debugger: a second one never kills the session.
    options = RunOptions(allow_code_change=True, allow_env_change=True, escalate=False)
    return run_spec(argv, working_directory(parent), options, scratch)


def debugged(argv: list[str]) -> list[str]:
    """``python [options] script|-m module args`` run under ``-m pdb``; a script that a
    launcher (torchrun) starts per rank is debugged as one process."""
    command = parse_command(argv)
    if (
        command.interpreter != "python"
        or command.code is not None
        or (command.script is None and command.module is None)
    ):
        raise CliError(
            f"kleio: `kleio pdb` debugs Python scripts and modules; `{' '.join(argv)}` is not one",
            EXIT_USAGE,
        )
    python = argv[0]
    if os.path.basename(argv[0]) in LAUNCHER_PROGRAMS:  # torchrun: debug one process of the script
        python = interpreter_of(argv, os.getcwd()) or sys.executable
    head = [python, *command.interpreter_options, "-m", "pdb"]
    target = ["-m", command.module] if command.module is not None else [str(command.script)]
    return head + target + command.args
