"""What a trial is: ``kleio info`` (its command, status, executions, configuration,
code, environment and artifacts, as text or JSON) and ``kleio diff`` (what differs
between two trials or executions)."""

from __future__ import annotations

import signal
from typing import Any

from kleio_cli import render
from kleio_cli.artifacts import described
from kleio_cli.request import call


def info(trial: str, as_json: bool) -> None:
    detail = call("info", id=trial)
    if as_json:
        render.print_json(info_json(detail))
        return
    print(_info_text(detail))


def info_json(detail: dict[str, Any]) -> dict[str, Any]:
    """What `kleio info --json` prints (and the web view serves)."""
    return {
        **detail,
        "command": render.command(detail["command"]),
        "argv": detail["command"],
        "created": render.iso(detail["created"]),
        "updated": render.iso(detail["updated"]),
        "since": render.iso(detail["since"]),
        "executions": [
            {
                **e,
                "start": render.iso(e["start"]),
                "end": render.iso(e["end"]),
                "exit_signal": _exit_signal(e["exit_code"]),
                "exit": _exit(e),  # as shown: `130 (SIGINT)`
                "resumed": _resumed(e),  # as shown: `after epoch=3 (checkpoint.pt)`
            }
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


def _resumed(execution: dict[str, Any]) -> str | None:
    if execution.get("resume_point") is not None:
        return render.landmark(execution.get("resumed_after")) or "at a checkpoint"
    return "from scratch" if execution.get("restarted") else None


def _exit(execution: dict[str, Any]) -> str | None:
    """The exit status as a shell shows it: ``130 (SIGINT)`` for a death by SIGINT."""
    code = execution["exit_code"]
    died = _exit_signal(code)
    if died is None:
        return None if code is None else str(code)
    return f"{128 - code} ({died})"


def _info_text(detail: dict[str, Any]) -> str:
    fields = [
        ["id", detail["id"]],
        ["status", detail["status"]],
        ["command", render.command(detail["command"])],
        ["cwd", detail["cwd"]],
        ["user", detail["user"]],
        ["created", render.when(detail["created"])],
        ["tags", ", ".join(detail.get("tags") or []) or None],
        ["parent", detail["parent"]],
        ["statistics", f"{detail['statistics']} records"],
    ]
    if detail["parent"]:
        inherited = detail["inherited_records"]
        fields.insert(
            7,
            [
                "branch",
                f"{detail['branch_kind']} "
                f"{render.landmark(detail.get('branched_after')) or 'at the start'}; "
                + (
                    f"{inherited} records inherited"
                    if inherited
                    else "inherits nothing: no execution loaded an inherited artifact"
                ),
            ],
        )
    executions = [
        [
            e["number"],
            e["host"],
            e["pid"],
            render.when(e["start"]),
            render.when(e["end"]),
            _exit(e),
            e["status"],
            _signals(e),
            _resumed(e),
        ]
        for e in detail["executions"]
    ]
    artifacts = [
        [a["filename"], a["size"], a["sha256"][:12], a["execution"], described(a["metadata"])]
        for a in detail["artifacts"]
    ]
    sections = [
        "Trial\n" + _indent(render.table(["", ""], fields).split("\n", 1)[1]),
        "Executions\n"
        + _indent(
            render.table(
                ["#", "HOST", "PID", "START", "END", "EXIT", "STATUS", "SIGNALS", "RESUMED"],
                executions,
            )
        ),
    ]
    sections += [
        text
        for text in (
            _configuration_text(detail.get("configuration")),
            _code_text(detail.get("code")),
            _environment_text(detail.get("environment")),
        )
        if text
    ]
    resources = [
        [
            r["path"],
            r.get("kind"),
            r.get("size"),
            (r.get("sha256") or "-")[:12],
            r["execution"],
            described(r.get("metadata") or {}),
        ]
        for r in detail.get("resources") or []
    ]
    if resources:
        sections.append(
            "Resources\n"
            + _indent(
                render.table(["PATH", "KIND", "BYTES", "SHA256", "EXEC", "METADATA"], resources)
            )
        )
    if artifacts:
        sections.append(
            "Artifacts\n"
            + _indent(render.table(["FILENAME", "BYTES", "SHA256", "EXEC", "METADATA"], artifacts))
        )
    return "\n\n".join(sections)


def _pairs(title: str, pairs: list[list[Any]]) -> str:
    return title + "\n" + _indent(render.table(["", ""], pairs).split("\n", 1)[1])


def _configuration_text(configuration: dict[str, Any] | None) -> str:
    if not configuration:
        return ""
    pairs = [[name, value] for name, value in configuration["options"].items()]
    if configuration["positional"]:
        pairs.insert(0, ["arguments", " ".join(map(str, configuration["positional"]))])
    pairs += [
        [f"file {name}", f"{f['size']} bytes, sha256 {f['sha256'][:12]}"]
        for name, f in configuration["files"].items()
    ]
    return _pairs("Configuration", pairs or [["arguments", None]])


def _code_text(code: dict[str, Any] | None) -> str:
    if not code:
        return ""
    if not code.get("git"):
        return _pairs(
            "Code",
            [
                ["script", code.get("script")],
                ["sha256", (code.get("sha256") or "")[:12] or None],
                ["git", "not a git repository"],
            ],
        )
    patch = code.get("patch_files") or []
    untracked = [f["path"] for f in code.get("untracked") or []]
    return _pairs(
        "Code",
        [
            ["repository", code.get("root")],
            ["commit", code.get("commit")],
            ["branch", code.get("branch")],
            ["remote", code.get("remote")],
            ["dirty", "yes" if code.get("dirty") else "no"],
            ["patch", f"{_files(len(patch))}: {', '.join(patch)}" if patch else None],
            [
                "untracked",
                f"{_files(len(untracked))}: {render.clip(', '.join(untracked))}"
                if untracked
                else None,
            ],
            ["ran", _files_ran(code.get("imported"))],
        ],
    )


def _files_ran(imported: dict[str, str] | None) -> str:
    """The files the trial's executions ran, as they reported them (what a resume compares)."""
    if imported is None:
        return "not reported: a resume compares commit, patch and untracked files"
    shown = list(imported)[:SHOWN_FILES]
    more = len(imported) - len(shown)
    rest = f", and {more} more (--json lists them)" if more else ""
    return f"{_files(len(imported))}: {', '.join(shown)}{rest}"


def _files(count: int) -> str:
    return "1 file" if count == 1 else f"{count} files"


SHOWN_FILES = 20


def _environment_text(env: dict[str, Any] | None) -> str:
    if not env:
        return ""
    python = env.get("python") or {}
    gpus = env.get("gpus") or []
    cpu = env.get("cpu") or {}
    memory = env.get("memory_bytes")
    return _pairs(
        "Environment",
        [
            ["python", f"{python.get('version')} ({python.get('executable')})"],
            ["packages", len(env.get("packages") or {})],
            [
                "os",
                f"{env.get('distribution') or env.get('os')}, kernel {env.get('kernel')}, "
                f"{env.get('architecture')}",
            ],
            ["cpu", f"{cpu.get('count')} x {cpu.get('model')}"],
            ["memory", f"{memory / 2**30:.1f} GiB" if memory else None],
            [
                "gpu",
                "; ".join(
                    f"{g['model']} ({g.get('memory_mib')} MiB, driver {g.get('driver')},"
                    f" CUDA {g.get('cuda')})"
                    for g in gpus
                )
                or "none",
            ],
            ["host", f"{env.get('user')}@{env.get('hostname')}"],
            ["kleio", env.get("kleio")],
        ],
    )


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def diff(a: str, b: str | None, as_json: bool) -> None:
    """What differs between two trials or executions; without ``b``, between ``a``'s last
    execution and what running its command here would run."""
    result = call("diff", a=a, b=b) if b is not None else _diff_with_here(a)
    if as_json:
        render.print_json(result)
        return
    print(_diff_text(result))


def _diff_with_here(a: str) -> dict[str, Any]:
    from kleio_cli.connection import connect
    from kleio_cli.redaction import redacted
    from kleio_cli.run import capture_here, working_directory
    from kleio_runtime.config import resolve

    with connect(resolve()) as client:
        detail = client.call("trial", id=a)
        here = capture_here(
            client,
            redacted(detail["command"]),
            working_directory(detail),
            detail["id"],
            {"id": detail["id"]},
        )
        return dict(client.call("diff", a=a, here=here))


def _diff_text(result: dict[str, Any]) -> str:
    lines = [f"kleio diff {result['a']} {result['b']}"]
    ran = result["code"].get("imported")
    sections = (
        ("configuration", result["configuration"]),
        (
            "code" + (f" (in the files they ran: {', '.join(ran)})" if ran else ""),
            result["code"]["changes"],
        ),
        ("environment", result["environment"]),
    )
    for title, changes in sections:
        lines.append(f"\n{title}:" + ("" if changes else " no difference"))
        lines += ["  " + change.replace("\n", "\n  ").rstrip() for change in changes]
    if result["code"]["patch"]:
        lines += ["", result["code"]["patch"].rstrip("\n")]
    return "\n".join(lines)
