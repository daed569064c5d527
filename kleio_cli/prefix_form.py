"""The prefix form, ``kleio COMMAND ARGS...``: which command lines mean ``kleio run``, and
which are a mistyped kleio subcommand that must not run a program of the same name.

``kleio stat ID`` would run ``/usr/bin/stat`` and ``kleio rm 44a2`` once deleted a
file named ``44a2``: a first word one edit from a subcommand (``stat``, ``tial``,
``lss``), two edits from one when no program has that name, or one that names a
subcommand users expect (``delete``, ``show``), is refused, unless it is a path or a
program people do run as trials (an interpreter, a launcher).  ``kleio run -- WORD
...`` runs it all the same.
"""

from __future__ import annotations

import os
import re
import shutil

# What users type for a subcommand that has another name.
EXPECTED = {
    "rm": "rm",  # the subcommand; /bin/rm of a trial id deleted a file
    "delete": "rm",
    "del": "rm",
    "remove": "rm",
    "show": "info",
    "list": "ls",
    "log": "cat",
    "logs": "cat",
    "output": "cat",
    "status": "info",
    "resume": "exec",
    "help": "--help",
}
# Programs that trials are made of, however close their names come to a subcommand's.
LAUNCHERS = frozenset(
    {
        "sh", "bash", "zsh", "dash", "ksh", "fish", "env", "time", "nice", "nohup", "timeout",
        "srun", "mpirun", "mpiexec", "torchrun", "accelerate", "deepspeed", "uv", "pip",
        "pipx", "poetry", "pipenv", "conda", "mamba", "pixi", "hatch", "node", "go", "julia",
        "java", "perl", "ruby", "lua", "make", "just", "echo", "printf", "true", "false",
        "sleep", "seq", "xargs", "singularity", "apptainer", "taskset", "numactl",
        "gcc", "cc", "bc", "dc", "nc",
    }
)  # fmt: skip
_INTERPRETER = re.compile(r"^(python|pypy|ipython)[0-9.]*$|^R(script)?$")


def typo(word: str, commands: set[str]) -> str | None:
    """The subcommand ``word`` most likely meant, or None when ``word`` may run as the
    first word of a trial."""
    if os.sep in word or word in LAUNCHERS or _INTERPRETER.match(word):
        return None
    if word.lower() in EXPECTED:
        return EXPECTED[word.lower()]
    distance, name = min((_distance(word.lower(), name), name) for name in commands)
    if distance == 1:
        return name
    # Two edits away: a typo when no program has that name (`lsst`), but a program
    # that exists is the user's own (a `train` entry point is not `tail`).
    if distance == 2 and min(len(word), len(name)) > 3 and shutil.which(word) is None:
        return name
    return None


def refusal(word: str, meant: str) -> str:
    if meant == "--help":
        suggestion = "kleio --help"
    else:
        suggestion = f"kleio {meant}"
    return (
        f"kleio: did you mean '{suggestion}'? To run the program '{word}' as a trial, "
        f"write 'kleio run -- {word} ...'"
    )


def _distance(a: str, b: str) -> int:
    """Edits (insertion, deletion, substitution, swap of neighbours) from ``a`` to ``b``."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        row = [i]
        for j, y in enumerate(b, 1):
            cost = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                cost = min(cost, previous2[j - 2] + 1)
            row.append(cost)
        previous2, previous = previous, row
    return previous[-1]
