"""What ran: code, environment and configuration, captured at every execution.

Capture happens in the CLI, before the reservation, in the caller's
environment; the slow parts (git through gitpython, the trial interpreter's
package probe, the GPU query) run side by side in threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kleio_cli.capture.code import capture_code
from kleio_cli.capture.configuration import config_files, parse_arguments, parse_command
from kleio_cli.capture.environment import (
    capture_machine,
    capture_python,
    interpreter_of,
    safe_variables,
)


def capture(argv: list[str], cwd: str, environ: dict[str, str] | None = None) -> dict[str, Any]:
    env = dict(os.environ if environ is None else environ)
    command = parse_command(argv)
    script = Path(cwd, command.script).resolve() if command.script else None
    anchor = script.parent if script else Path(cwd).resolve()
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="kleio-capture") as pool:
        code = pool.submit(capture_code, script, anchor)
        python = pool.submit(capture_python, interpreter_of(argv, cwd))
        machine = pool.submit(capture_machine)
        configuration = {
            "command": argv,
            "interpreter": command.interpreter,
            "script": command.script,
            "module": command.module,
            **(
                {"launcher": [command.launcher, *command.launcher_options]}
                if command.launcher
                else {}
            ),
            **parse_arguments(command.args),
            "files": config_files(command.args, cwd),
        }
        environment = {**python.result(), **machine.result(), "variables": safe_variables(env)}
        return {"code": code.result(), "environment": environment, "configuration": configuration}
