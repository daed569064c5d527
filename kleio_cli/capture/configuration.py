"""The trial's configuration: its command line parsed, and the config files it names."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PYTHON = re.compile(r"^(python|pypy)(\d+(\.\d+)*)?$")
# Python options that take a value as the next argument.
_PYTHON_VALUED = frozenset({"-W", "-X", "-Q"})
# Launchers that start the script once per rank: torchrun is `python -m torch.distributed.run`.
LAUNCHER_PROGRAMS = {"torchrun": "torch.distributed.run"}
LAUNCHER_MODULES = frozenset({"torch.distributed.run", "torch.distributed.launch"})
# Their options that take no value (every other option takes one), spelled with dashes
# (`--no_python` is `--no-python`).
_LAUNCHER_FLAGS = frozenset(
    {
        "--standalone",
        "--no-python",
        "-m",
        "--module",
        "--run-path",
        "--use-env",
        "--virtual-local-rank",
    }
)
# The launcher's options that change what runs, and so name the trial; the others (where
# to meet, on which port, which node, where to log) change from one job to the next.
LAUNCHER_IDENTITY = frozenset(
    {"--nproc-per-node", "--nnodes", "-m", "--module", "--no-python", "--run-path"}
)
CONFIG_SUFFIXES = frozenset({".yaml", ".yml", ".json", ".toml", ".ini", ".cfg"})
CONFIG_MAX_BYTES = 1024 * 1024
_INT = re.compile(r"^[-+]?\d+$")
_FLOAT = re.compile(r"^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class Command:
    """A command line split into what identifies it."""

    interpreter: str
    interpreter_options: list[str]
    script: str | None
    module: str | None
    code: str | None
    args: list[str]
    # `torchrun [options] script args`: the launcher's module and options; script and args
    # are then the training script's.
    launcher: str | None = None
    launcher_options: list[str] = field(default_factory=list)


def parse_command(argv: list[str]) -> Command:
    program = os.path.basename(argv[0])
    if program in LAUNCHER_PROGRAMS:
        return _launched(LAUNCHER_PROGRAMS[program], [], argv[1:])
    if not _PYTHON.match(program):
        script = argv[0] if os.sep in argv[0] else None
        return Command(program if script is None else "", [], script, None, None, argv[1:])
    options: list[str] = []
    rest = argv[1:]
    while rest and rest[0].startswith("-") and rest[0] != "-":
        option = rest.pop(0)
        if option in ("-m", "-c"):
            target = rest.pop(0) if rest else ""
            if option == "-m" and target in LAUNCHER_MODULES:
                return _launched(target, options, rest)
            module, code = (target, None) if option == "-m" else (None, target)
            return Command("python", options, None, module, code, rest)
        options.append(option)
        if option in _PYTHON_VALUED and rest:
            options.append(rest.pop(0))
    script = rest.pop(0) if rest else None
    return Command("python", options, script, None, None, rest)


def _launched(launcher: str, interpreter_options: list[str], rest: list[str]) -> Command:
    """``torchrun --nproc_per_node 2 train.py --lr 0.1``: the launcher's options, then the
    script (or module, with ``-m``) that every rank runs, then its arguments."""
    options: list[str] = []
    rest = list(rest)
    while rest and rest[0].startswith("-") and rest[0] != "--":
        options += _take_launcher_option(rest)[0]
    if rest and rest[0] == "--":
        options.append(rest.pop(0))
    target = rest.pop(0) if rest else None
    as_module = "-m" in options or "--module" in options
    return Command(
        "python",
        interpreter_options,
        None if as_module else target,
        target if as_module else None,
        None,
        rest,
        launcher,
        options,
    )


def _take_launcher_option(rest: list[str]) -> tuple[list[str], str, str | None]:
    """Take one launcher option off ``rest``, with the value after it when it takes one:
    its words, its name spelled one way (``--nproc_per_node`` is ``--nproc-per-node``),
    and its value (None for a flag)."""
    option = rest.pop(0)
    name, has_value, value = option.partition("=")
    if name.startswith("--"):
        name = name.replace("_", "-")
    if has_value:
        return [option], name, value
    if name in _LAUNCHER_FLAGS or not rest or (not option.startswith("--") and len(option) > 2):
        return [option], name, None  # a flag, or `-t3`, its value attached
    value = rest.pop(0)
    return [option, value], name, value


def launcher_identity(options: list[str]) -> list[str]:
    """The launcher options that name a trial, spelled one way (``--nproc_per_node=2`` is
    ``--nproc-per-node 2``)."""
    kept: list[str] = []
    rest = [option for option in options if option != "--"]
    while rest:
        _, name, value = _take_launcher_option(rest)
        if name in LAUNCHER_IDENTITY:
            kept += [name] if value is None else [name, value]
    return kept


def typed(value: str) -> Any:
    """An argument's value, typed where unambiguous: int, float, bool; else the string."""
    if _INT.match(value):
        return int(value)
    if _FLOAT.match(value):
        return float(value)
    if value in ("true", "True"):
        return True
    if value in ("false", "False"):
        return False
    return value


def _is_option(arg: str) -> bool:
    return arg.startswith("-") and arg != "-" and not _FLOAT.match(arg)


def parse_arguments(args: list[str]) -> dict[str, Any]:
    """``--lr 0.1``, ``--lr=0.1``, flags and repeated options; positional arguments in order."""
    positional: list[Any] = []
    options: dict[str, Any] = {}
    repeated: set[str] = set()
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            positional.extend(typed(a) for a in args[index:])
            break
        if not _is_option(arg):
            positional.append(typed(arg))
            continue
        name, has_value, value = arg.partition("=")
        if not has_value:
            if index < len(args) and not _is_option(args[index]) and args[index] != "--":
                value, index = args[index], index + 1
            else:
                _add(options, repeated, name, True)
                continue
        _add(options, repeated, name, typed(value))
    return {"positional": positional, "options": options}


def tokens(args: list[str]) -> list[tuple[str | None, list[str]]]:
    """The arguments grouped as parse_arguments reads them: (option name or None, tokens)."""
    groups: list[tuple[str | None, list[str]]] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            groups += [(None, [a]) for a in args[index - 1 :]]
            break
        if not _is_option(arg):
            groups.append((None, [arg]))
            continue
        name = arg.partition("=")[0]
        if (
            "=" not in arg
            and index < len(args)
            and not _is_option(args[index])
            and args[index] != "--"
        ):
            groups.append((name, [arg, args[index]]))
            index += 1
        else:
            groups.append((name, [arg]))
    return groups


def _add(options: dict[str, Any], repeated: set[str], name: str, value: Any) -> None:
    """A repeated option's values become a list, in order."""
    if name not in options:
        options[name] = value
    elif name in repeated:
        options[name].append(value)
    else:
        repeated.add(name)
        options[name] = [options[name], value]


def config_files(args: list[str], cwd: str) -> dict[str, dict[str, Any]]:
    """The small configuration files named on the command line, with their content."""
    found: dict[str, dict[str, Any]] = {}
    for arg in args:
        candidate = arg.partition("=")[2] if arg.startswith("-") and "=" in arg else arg
        if Path(candidate).suffix.lower() not in CONFIG_SUFFIXES:
            continue
        path = Path(cwd, candidate)
        try:
            if not path.is_file() or path.stat().st_size > CONFIG_MAX_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        text = data.decode("utf-8", errors="replace")
        found[candidate] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "content": text,
        }
        values = settings(text, path.suffix.lower())
        if values:
            found[candidate]["values"] = values
    return found


def settings(text: str, suffix: str) -> dict[str, Any]:
    """A configuration file's values by dotted name (``optimizer.lr``), what ``kleio ls
    --where`` filters on beside the command line's options; nothing for a file that does
    not parse (the file is kept as text all the same)."""
    try:
        tree = _parsed(text, suffix)
    except Exception:  # yaml, toml, json and configparser each raise their own  # noqa: BLE001
        return {}
    flat: dict[str, Any] = {}
    _flatten(tree, "", flat)
    return flat


def _parsed(text: str, suffix: str) -> Any:
    if suffix == ".json":
        import json

        return json.loads(text)
    if suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        return tomllib.loads(text)
    if suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return {name: {k: typed(v) for k, v in parser[name].items()} for name in parser.sections()}


def _flatten(tree: Any, prefix: str, flat: dict[str, Any]) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            _flatten(value, f"{prefix}{str(key).replace('-', '_')}.", flat)
    elif prefix and (tree is None or isinstance(tree, (bool, int, float, str, list))):
        if not isinstance(tree, list) or all(isinstance(v, (bool, int, float, str)) for v in tree):
            flat[prefix[:-1]] = tree
