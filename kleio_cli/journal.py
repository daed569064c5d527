"""Reading the journal: ``kleio ls``, ``info``, ``cat`` and ``stats``."""

from __future__ import annotations

import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kleio_cli import columnar, render, statistics
from kleio_cli.capture.configuration import typed
from kleio_cli.carriage import Collapser
from kleio_cli.connection import connect
from kleio_cli.errors import EXIT_NOT_FOUND, EXIT_USAGE, CliError
from kleio_client import segments as stored
from kleio_client.journal import options
from kleiod.config import resolve
from kleiod.storage.base import SCRATCH


def _call(cmd: str, **args: Any) -> Any:
    with connect(resolve()) as client:
        return client.call(cmd, **args)


def ls(as_json: bool, statuses: tuple[str, ...] = (), tree: bool = False,
       tags: tuple[str, ...] = (), where: tuple[str, ...] = ()) -> None:
    trials = [t for t in _call("ls") if t.get("branch_kind") != SCRATCH
              and (not statuses or t["status"] in statuses)
              and set(tags) <= set(t.get("tags") or [])]
    if where:
        trials = _configured(trials, statistics.conditions(list(where)))
    if as_json:
        render.print_json([
            {"id": t["id"], "status": t["status"], "command": render.command(t["command"]),
             "argv": t["command"], "created": render.iso(t["created"]), "parent": t["parent"],
             "host": t["host"], "executions": t["executions"], "tags": t.get("tags") or []}
            for t in trials
        ])
        return
    if not trials:
        print("no trials" + (" with that status or tag" if statuses or tags else
                             " yet; run one with `kleio python train.py`"), file=sys.stderr)
        return
    if tree:
        trials, depths = _as_tree(trials)
    else:
        depths = [0] * len(trials)
    rows = [["  " * depth + ("└─ " if depth else "") + (render.short(t["id"]) or ""),
             t["status"], render.clip(render.command(t["command"])), render.when(t["created"]),
             t["host"], render.short(t["parent"])] for t, depth in zip(trials, depths,
                                                                         strict=True)]
    headers = ["ID", "STATUS", "COMMAND", "CREATED", "HOST", "PARENT"]
    if any(t.get("tags") for t in trials):
        headers.append("TAGS")
        for row, trial in zip(rows, trials, strict=True):
            row.append(",".join(trial.get("tags") or []) or None)
    print(render.table(headers, rows))


def tag(trial: str, names: list[str], remove: bool, as_json: bool) -> None:
    result = _call("tag", id=trial, **{"remove" if remove else "add": names})
    if as_json:
        render.print_json(result)
        return
    print(f"{render.short(result['id'])}: {', '.join(result['tags']) or 'no tags'}")


def _configured(trials: list[dict[str, Any]], where: list[statistics.Condition]
                ) -> list[dict[str, Any]]:
    """The trials whose command-line options match (``lr>0.01``: ``--lr``, ``batch_size``:
    ``--batch-size``)."""
    kept = []
    with connect(resolve()) as client:
        for trial in trials:
            captured = client.call("info", id=trial["id"]).get("configuration") or {}
            if all(c.holds(options(captured)) for c in where):
                kept.append(trial)
    return kept


def _as_tree(trials: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    """Trials in branch-tree order (each child under its parent, oldest first) and depths;
    a trial whose parent is not listed is a root."""
    listed = {t["id"] for t in trials}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for trial in trials:
        parent = trial["parent"] if trial["parent"] in listed else None
        children.setdefault(parent, []).append(trial)
    ordered: list[dict[str, Any]] = []
    depths: list[int] = []
    stack = [(t, 0) for t in reversed(children.get(None, []))]
    while stack:
        trial, depth = stack.pop()
        ordered.append(trial)
        depths.append(depth)
        stack += [(c, depth + 1) for c in reversed(children.get(trial["id"], []))]
    return ordered, depths


def info(trial: str, as_json: bool) -> None:
    detail = _call("info", id=trial)
    if as_json:
        render.print_json(_info_json(detail))
        return
    print(_info_text(detail))


def _info_json(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        **detail,
        "command": render.command(detail["command"]),
        "argv": detail["command"],
        "created": render.iso(detail["created"]),
        "updated": render.iso(detail["updated"]),
        "since": render.iso(detail["since"]),
        "executions": [
            {**e, "start": render.iso(e["start"]), "end": render.iso(e["end"]),
             "exit_signal": _exit_signal(e["exit_code"])}
            for e in detail["executions"]
        ],
        "history": [{**h, "at": render.iso(h["at"])} for h in detail["history"]],
    }


def _exit_signal(exit_code: int | None) -> str | None:
    """The signal an execution's process died of (its exit code is minus its number)."""
    if exit_code is None or exit_code >= 0:
        return None
    try:
        return signal.Signals(-exit_code).name
    except ValueError:
        return f"signal {-exit_code}"


def _signals(execution: dict[str, Any]) -> str | None:
    """The signals its supervisor forwarded, then the one it died of."""
    died = _exit_signal(execution["exit_code"])
    shown = list(execution["signals"]) + ([f"died of {died}"] if died else [])
    return ", ".join(shown) or None


def _info_text(detail: dict[str, Any]) -> str:
    fields = [
        ["id", detail["id"]], ["status", detail["status"]],
        ["command", render.command(detail["command"])], ["cwd", detail["cwd"]],
        ["user", detail["user"]], ["created", render.when(detail["created"])],
        ["tags", ", ".join(detail.get("tags") or []) or None],
        ["parent", detail["parent"]], ["statistics", f"{detail['statistics']} records"],
    ]
    if detail["parent"]:
        inherited = detail["inherited_records"]
        fields.insert(7, ["branch", f"{detail['branch_kind']} at position "
                          f"{detail['branch_point']}; " + (
                              f"{inherited} records inherited" if inherited else
                              "inherits nothing: no execution loaded an inherited artifact")])
    executions = [
        [e["number"], e["host"], e["pid"], render.when(e["start"]), render.when(e["end"]),
         e["exit_code"], e["status"], _signals(e), _resumed(e)]
        for e in detail["executions"]
    ]
    artifacts = [
        [a["filename"], a["size"], a["sha256"][:12], a["execution"], _metadata(a["metadata"])]
        for a in detail["artifacts"]
    ]
    sections = [
        "Trial\n" + _indent(render.table(["", ""], fields).split("\n", 1)[1]),
        "Executions\n" + _indent(render.table(
            ["#", "HOST", "PID", "START", "END", "EXIT", "STATUS", "SIGNALS", "RESUMED"],
            executions)),
    ]
    sections += [text for text in (_configuration_text(detail.get("configuration")),
                                   _code_text(detail.get("code")),
                                   _environment_text(detail.get("environment"))) if text]
    if artifacts:
        sections.append("Artifacts\n" + _indent(render.table(
            ["FILENAME", "BYTES", "SHA256", "EXEC", "METADATA"], artifacts)))
    return "\n\n".join(sections)


def _pairs(title: str, pairs: list[list[Any]]) -> str:
    return title + "\n" + _indent(render.table(["", ""], pairs).split("\n", 1)[1])


def _configuration_text(configuration: dict[str, Any] | None) -> str:
    if not configuration:
        return ""
    pairs = [[name, value] for name, value in configuration["options"].items()]
    if configuration["positional"]:
        pairs.insert(0, ["arguments", " ".join(map(str, configuration["positional"]))])
    pairs += [[f"file {name}", f"{f['size']} bytes, sha256 {f['sha256'][:12]}"]
              for name, f in configuration["files"].items()]
    return _pairs("Configuration", pairs or [["arguments", None]])


def _code_text(code: dict[str, Any] | None) -> str:
    if not code:
        return ""
    if not code.get("git"):
        return _pairs("Code", [["script", code.get("script")],
                               ["sha256", (code.get("sha256") or "")[:12] or None],
                               ["git", "not a git repository"]])
    patch = code.get("patch_files") or []
    untracked = [f["path"] for f in code.get("untracked") or []]
    return _pairs("Code", [
        ["repository", code.get("root")], ["commit", code.get("commit")],
        ["branch", code.get("branch")], ["remote", code.get("remote")],
        ["dirty", "yes" if code.get("dirty") else "no"],
        ["patch", f"{len(patch)} files: {', '.join(patch)}" if patch else None],
        ["untracked", f"{len(untracked)} files: {render.clip(', '.join(untracked))}"
         if untracked else None],
    ])


def _environment_text(env: dict[str, Any] | None) -> str:
    if not env:
        return ""
    python = env.get("python") or {}
    gpus = env.get("gpus") or []
    cpu = env.get("cpu") or {}
    memory = env.get("memory_bytes")
    return _pairs("Environment", [
        ["python", f"{python.get('version')} ({python.get('executable')})"],
        ["packages", len(env.get("packages") or {})],
        ["os", f"{env.get('distribution') or env.get('os')}, kernel {env.get('kernel')}, "
               f"{env.get('architecture')}"],
        ["cpu", f"{cpu.get('count')} x {cpu.get('model')}"],
        ["memory", f"{memory / 2**30:.1f} GiB" if memory else None],
        ["gpu", "; ".join(f"{g['model']} ({g.get('memory_mib')} MiB, driver {g.get('driver')},"
                          f" CUDA {g.get('cuda')})" for g in gpus) or "none"],
        ["host", f"{env.get('user')}@{env.get('hostname')}"],
        ["kleio", env.get("kleio")],
    ])


def diff(a: str, b: str, as_json: bool) -> None:
    result = _call("diff", a=a, b=b)
    if as_json:
        render.print_json(result)
        return
    print(_diff_text(result))


def _diff_text(result: dict[str, Any]) -> str:
    lines = [f"kleio diff {result['a']} {result['b']}"]
    sections = (("configuration", result["configuration"]),
                ("code", result["code"]["changes"]),
                ("environment", result["environment"]))
    for title, changes in sections:
        lines.append(f"\n{title}:" + ("" if changes else " no difference"))
        lines += ["  " + change.replace("\n", "\n  ").rstrip() for change in changes]
    if result["code"]["patch"]:
        lines += ["", result["code"]["patch"].rstrip("\n")]
    return "\n".join(lines)


def _resumed(execution: dict[str, Any]) -> str | None:
    if execution.get("resume_point") is not None:
        return f"at {execution['resume_point']}"
    return "from scratch" if execution.get("restarted") else None


def artifacts(trial: str, as_json: bool) -> None:
    found = _call("artifacts", id=trial)
    if as_json:
        render.print_json([{k: v for k, v in a.items() if k != "path"} for a in found])
        return
    if not found:
        print("no artifacts", file=sys.stderr)
        return
    rows = [[a["filename"], a["size"], _metadata(a["metadata"]), a["position"],
             f"{render.short(a['trial'])}:{a['execution']}", a["sha256"][:12]] for a in found]
    print(render.table(["FILENAME", "BYTES", "METADATA", "POSITION", "FROM", "SHA256"], rows))


def artifact_get(trial: str, filename: str, where: list[str], output: str | None) -> None:
    """Copy the latest matching artifact of the effective history to ``output``."""
    metadata = dict(_where(w) for w in where)
    found = _call("artifacts", id=trial, filename=filename, metadata=metadata)
    if not found:
        raise CliError(f"kleio: trial {trial} has no artifact {filename!r}"
                       + (f" where {' '.join(where)}" if where else "")
                       + "; see `kleio artifacts " + trial + "`", EXIT_NOT_FOUND)
    latest = found[-1]
    target = Path(output or Path(filename).name)
    if target.is_dir():
        target = target / Path(filename).name
    shutil.copyfile(latest["path"], target)
    print(f"{target} ({latest['size']} bytes, {_metadata(latest['metadata'])}, "
          f"position {latest['position']})", file=sys.stderr)


def _where(text: str) -> tuple[str, Any]:
    key, sign, value = text.partition("=")
    if not sign or not key:
        raise CliError(f"kleio: --where takes KEY=VALUE; got {text!r}", EXIT_USAGE)
    return key, typed(value)


def _metadata(metadata: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in metadata.items()) or "-"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def cat(trial: str, stream: str | None, raw: bool = False) -> None:
    """The output in journal order; rewrites after carriage returns collapsed unless raw."""
    out = sys.stdout.buffer
    collapsers = {name: Collapser() for name in ("stdout", "stderr")}
    for chunk in _call("cat", id=trial):
        if stream is None or chunk["stream"] == stream:
            data = chunk["data"]
            out.write(data if raw else collapsers[chunk["stream"]].feed(data))
    for collapser in collapsers.values():
        out.write(collapser.finish())
    out.flush()


@dataclass(frozen=True)
class StatsQuery:
    """What `kleio stats` shows: which records, which keys, in what order and form."""

    trial: str
    sort: str | None = None
    where: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()  # all keys when empty
    form: str = "table"  # table, csv or json
    all_executions: bool = False


def stats(query: StatsQuery) -> None:
    if not query.all_executions:
        _effective_stats(query)
        return
    where = statistics.conditions(list(query.where))
    rows = [row for row in _call("stats", id=query.trial, sort=query.sort, all_executions=True)
            if all(c.holds(row["record"]) for c in where)]
    if query.form == "json":
        render.print_json([{"trial": row["trial"], "execution": row["execution"],
                            "superseded": row["superseded"],
                            "record": _selected(row["record"], query.keys)} for row in rows])
        return
    if not rows:
        print("no statistics logged", file=sys.stderr)
        return
    keys: dict[str, None] = dict.fromkeys(query.keys)
    if not keys:
        for row in rows:
            keys.update(dict.fromkeys(row["record"]))
    headers = ["EXEC", *keys]
    trial_ids = {row["trial"] for row in rows}
    table = [[_origin(row, trial_ids)] + [row["record"].get(k) for k in keys] for row in rows]
    if query.form == "csv":
        render.print_csv(headers, table)
        return
    print(render.table(headers, table))


def _selected(record: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: record.get(k) for k in keys} if keys else record


def _effective_stats(query: StatsQuery) -> None:
    """The effective history's statistics, cut into columns by the daemon a page at a time
    and formatted here a page at a time meanwhile; the finished lines are sorted."""
    where = statistics.conditions(list(query.where))
    formatted = None if query.form == "csv" else columnar.Formatted(
        query.form == "json", query.keys)
    with connect(resolve()) as client:
        segments = client.call("stats", id=query.trial, segments=True, bodies=False)
        table = statistics.paged(client, segments, where,
                                 None if formatted is None else formatted.add)
    labels, columns = table.labels, table.columns
    ranks = statistics.ranks(query.sort, labels, columns) if query.sort else None
    if query.keys:
        known = dict(zip(labels, columns, strict=True))
        columns = [known.get(k, [None] * len(table.origins)) for k in query.keys]
        labels = list(query.keys)
    if formatted is not None and query.form == "json":
        rows = formatted.json_objects(labels)
        if rows is None:
            render.print_json_array(_json_records(query, where))
        else:
            render.print_json_rows(statistics.arranged(rows, ranks))
        return
    several = len({(s["trial"], s["execution"]) for s in segments}) > 1
    origins = statistics.origin_labels(segments, table.origins) if several else []
    if formatted is None:
        if several:
            columns, labels = [origins, *columns], ["EXEC", *labels]
        render.print_csv(labels, statistics.arranged(list(zip(*columns, strict=True)), ranks))
        return
    if not table.origins:
        print("no statistics logged", file=sys.stderr)
        return
    header, lines = formatted.table(labels, origins)
    render.print_lines([header, *statistics.arranged(lines, ranks)])


def _json_records(query: StatsQuery, where: list[statistics.Condition]
                  ) -> list[dict[str, Any]]:
    """The records as they are, for JSON that rows of numbers cannot write: a record may
    hold a null, a string, NaN, or lack a key (read again as records, the rare case: of a
    running trial, perhaps with records that came since).  Sorted as the table is: a
    null as a missing key."""
    with connect(resolve()) as client:
        records = statistics.matching(stored.read(client, query.trial), where)
    if query.sort:
        column = [record.get(query.sort) for record in records]
        records = statistics.arranged(records, statistics.ranks(query.sort, [query.sort],
                                                                [column]))
    return [_selected(record, query.keys) for record in records] if query.keys else records


def _origin(row: dict[str, Any], trial_ids: set[str]) -> str:
    """Which execution logged a row: ``2``, ``3f2a8c1e:1`` when inherited; ``*`` superseded."""
    label = str(row["execution"])
    if len(trial_ids) > 1:
        label = f"{render.short(row['trial'])}:{label}"
    return label + ("*" if row["superseded"] else "")


def export(ids: list[str], output: str) -> None:
    target = Path(output).resolve()
    with connect(resolve(), timeout=3600) as client:
        done = client.call("export", ids=ids, path=str(target))
    print(f"{target}: {done['trials']} trials, {done['chunks']} chunks of records, "
          f"{done['artifacts']} artifacts", file=sys.stderr)


def import_(path: str) -> None:
    source = Path(path).resolve()
    if not source.is_file():
        raise CliError(f"kleio: no file {source}", EXIT_USAGE)
    with connect(resolve(), timeout=3600) as client:
        done = client.call("import", path=str(source))
    print(f"imported {done['trials']} trials ({done['chunks']} chunks of records, "
          f"{done['artifacts']} artifacts); {done['skipped']} already here", file=sys.stderr)
