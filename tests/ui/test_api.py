"""`kleio ui`'s HTTP side, for real: the command serving a journal made by real trials, its
token refused and accepted, its JSON equal to what the CLI prints, its live stream fed by
the daemon's pub/sub, and Ctrl-C stopping it."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.conftest import trial_id, wait_for_line
from tests.ui.conftest import Ui, start_ui, stop_ui

SWEEP = """
    import sys
    from kleio_client import kleio_logger
    for step in range(40):
        kleio_logger.log_statistic(step=step, loss=1.0 / (step + 1), split="train")
        if step % 10 == 9:
            kleio_logger.log_statistic(step=step, accuracy=step / 40, split="val")
    kleio_logger.log_artifact("weights.bin", b"\\x00\\x01 weights", epoch=1)
    print("progress 10%\\rprogress 100%")
    print("done")
"""


@pytest.fixture
def sweep(kleio, script) -> list[str]:
    """Two trials of a two-point sweep, one tagged: their ids."""
    name = script(SWEEP)
    ids = [trial_id(kleio.ok("python", name, "--lr", lr).stderr) for lr in ("0.1", "0.2")]
    kleio.ok("tag", ids[1], "best")
    return ids


def test_a_request_without_the_token_is_refused_and_one_with_it_is_served(sweep, ui: Ui):
    for path in ("/", "/api/trials", f"/api/trials/{sweep[0]}", "/static/vendor/uPlot.min.css"):
        status, body = ui.get(path, token=False)
        assert status == 401, path
        assert b"token" in body
    assert ui.get("/api/trials?token=not-it", token=False)[0] == 401
    assert ui.get("/", token=True)[0] == 200
    assert {t["id"]: t["status"] for t in ui.json("/api/trials")} == {
        sweep[0]: "completed",
        sweep[1]: "completed",
    }


def test_the_page_with_the_token_in_its_url_sets_the_cookie_that_serves_the_rest(sweep, ui: Ui):
    parts = urllib.parse.urlsplit(ui.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.request("GET", f"/?{parts.query}")
    response = connection.getresponse()
    response.read()
    assert response.status == 200
    cookie = response.getheader("set-cookie").split(";")[0]
    assert "HttpOnly" in response.getheader("set-cookie")
    connection.request("GET", "/api/trials", headers={"Cookie": cookie})
    listed = connection.getresponse()
    assert listed.status == 200 and len(json.loads(listed.read())) == 2
    connection.request("GET", "/api/trials", headers={"Cookie": "kleio_token=wrong"})
    refused = connection.getresponse()
    refused.read()
    assert refused.status == 401
    connection.close()


def test_the_trials_are_what_kleio_ls_json_gives_with_the_same_filters(kleio, sweep, ui: Ui):
    assert ui.json("/api/trials") == kleio.json("ls")
    assert ui.json("/api/trials?where=lr%3E0.15") == kleio.json("ls", "--where", "lr>0.15")
    assert [t["id"] for t in ui.json("/api/trials?where=lr%3E0.15")] == [sweep[1]]
    assert [t["id"] for t in ui.json("/api/trials?tag=best")] == [sweep[1]]
    assert ui.json("/api/trials?status=running") == []
    assert len(ui.json("/api/trials?command=train.py")) == 2
    assert ui.json("/api/trials?command=nosuch") == []
    with_options = ui.json("/api/trials?options=1")
    assert [t["options"] for t in with_options] == [{"lr": 0.1}, {"lr": 0.2}]


def test_a_trial_is_what_kleio_info_json_gives(kleio, sweep, ui: Ui):
    assert ui.json(f"/api/trials/{sweep[0]}") == kleio.json("info", sweep[0])
    assert ui.json(f"/api/trials/{sweep[0][:8]}")["id"] == sweep[0]


def test_statistics_come_as_columns_of_one_length_with_nulls_where_missing(sweep, ui: Ui):
    columns = ui.json(f"/api/trials/{sweep[0]}/statistics")
    assert set(columns) == {"step", "loss", "split", "accuracy"}
    assert {len(c) for c in columns.values()} == {44}
    assert columns["accuracy"].count(None) == 40 and columns["loss"].count(None) == 4
    chosen = ui.json(f"/api/trials/{sweep[0]}/statistics?keys=step,accuracy&where=split%3Dval")
    assert chosen == {"step": [9, 19, 29, 39], "accuracy": [0.225, 0.475, 0.725, 0.975]}
    assert ui.json(f"/api/trials/{sweep[0]}/keys") == {
        "keys": ["step", "loss", "split", "accuracy"],
        "rows": 44,
        "x": ["record", "step", "loss", "split", "accuracy"],
    }


LONG = """
    from kleio_client import kleio_logger
    for step in range(20000):
        kleio_logger.log_statistic(step=step, loss=100.0 if step == 12345 else 1.0 / (step + 1))
"""


def test_a_chart_view_is_thinned_to_its_pixels_keeping_every_spike(kleio, script, ui: Ui):
    trial = trial_id(kleio.ok("python", script(LONG)).stderr)
    view = ui.json(f"/api/trials/{trial}/statistics?x=step&keys=loss&points=100")
    assert 100 <= len(view["step"]) <= 400 and len(view["loss"]) == len(view["step"])
    assert view["step"] == sorted(view["step"]) and max(view["loss"]) == 100.0
    assert view["step"][0] == 0 and view["step"][-1] == 19999
    zoomed = ui.json(
        f"/api/trials/{trial}/statistics?x=step&keys=loss&points=100&from=12300&to=12400"
    )
    assert zoomed["step"] == list(range(12300, 12401))  # full resolution once it fits


def test_output_is_kleio_cat_s_with_rewrites_collapsed(kleio, sweep, ui: Ui):
    output = ui.json(f"/api/trials/{sweep[0]}/output")
    assert output["text"] == kleio.ok("cat", sweep[0]).stdout
    assert "progress 100%\ndone\n" in output["text"] and "10%" not in output["text"]
    assert output["status"] == "completed" and isinstance(output["end"], int)


def test_an_artifact_downloads_with_its_bytes_and_name(sweep, ui: Ui):
    [artifact] = ui.json(f"/api/trials/{sweep[0]}")["artifacts"] or [None]
    assert artifact["filename"] == "weights.bin"
    status, body = ui.get(f"/api/trials/{sweep[0]}/artifacts/0")
    assert (status, body) == (200, b"\x00\x01 weights")
    status, body = ui.get(f"/api/trials/{sweep[0]}/artifacts/7")
    assert status == 400 and b"no artifact 7" in body


def test_the_diff_is_what_kleio_diff_json_gives(kleio, sweep, ui: Ui):
    assert ui.json(f"/api/diff?a={sweep[0]}&b={sweep[1]}") == kleio.json("diff", sweep[0], sweep[1])


def test_the_summary_has_last_lowest_and_highest_values(sweep, ui: Ui):
    summary = ui.json(f"/api/summary?ids={sweep[0]},{sweep[1]}&keys=loss,accuracy,nosuch")
    assert summary[sweep[0]] == {
        "loss": {"last": 1 / 40, "min": 1 / 40, "max": 1.0},
        "accuracy": {"last": 0.975, "min": 0.225, "max": 0.975},
    }


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/api/trials/ffffffffffff", 404, "no trial has an id starting with 'ffffffffffff'"),
        ("/api/trials/ffffffffffff/statistics", 404, "no trial has an id"),
        ("/api/trials?where=lr", 400, "'lr'"),
        ("/api/trials/{id}/statistics?x=step&points=0", 400, "points must be"),
        ("/api/trials/{id}/statistics?x=step&from=soon", 400, "not a number"),
        ("/api/diff?a={id}", 400, "two trials"),
    ],
)
def test_a_bad_request_gets_a_one_line_error_and_a_status(
    sweep, ui: Ui, path: str, status: int, says: str
):
    got, body = ui.get(path.format(id=sweep[0]))
    error = json.loads(body)["error"]
    assert got == status and says in error and "\n" not in error, error


LIVE = """
    import os, sys, time
    from kleio_client import kleio_logger
    print("first line", flush=True)
    kleio_logger.log_statistic(step=0, loss=1.0)
    kleio_logger.flush()
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.01)
    print("second line", flush=True)
    kleio_logger.log_statistic(step=1, loss=0.5)
"""


def output_once(ui: Ui, trial: str, text: str, timeout: float = 60) -> dict:
    """The trial's output page, read again until it holds ``text``."""
    deadline = time.monotonic() + timeout
    while (output := ui.json(f"/api/trials/{trial}/output"))["text"] != text:
        assert time.monotonic() < deadline, f"the output never read {text!r}: {output!r}"
        time.sleep(0.02)
    return output


class Events:
    """A Server-Sent Events stream read as (event, data) pairs."""

    def __init__(self, ui: Ui, path: str) -> None:
        parts = urllib.parse.urlsplit(ui.base)
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self._connection.request("GET", path, headers={"Authorization": f"Bearer {ui.token}"})
        self._response = self._connection.getresponse()
        assert self._response.status == 200
        assert self._response.getheader("content-type").startswith("text/event-stream")

    def next(self) -> tuple[str, object]:
        name, data = "", None
        while True:
            line = self._response.readline().decode()
            assert line, "the event stream ended"
            if line.startswith("event: "):
                name = line[7:].strip()
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "\n" and name:
                return name, data

    def all_until(self, name: str) -> list[tuple[str, object]]:
        """Every event up to and with the first ``name``."""
        seen = [self.next()]
        while seen[-1][0] != name:
            seen.append(self.next())
        return seen

    def until(self, name: str) -> object:
        while True:
            got, data = self.next()
            if got == name:
                return data

    def close(self) -> None:
        self._connection.close()


@pytest.mark.slow
def test_live_output_and_statistics_of_a_running_trial_are_pushed(
    kleio, script, workdir: Path, ui: Ui
):
    release = workdir / "release"
    running = kleio.popen("python", script(LIVE), str(release))
    seen = wait_for_line(running.stderr, "trial reserved with id: ")
    trial = trial_id(seen)
    wait_for_line(running.stdout, "first line")
    output = output_once(ui, trial, "first line\n")  # the journal follows the terminal
    assert output["status"] == "running"
    events = Events(ui, f"/api/trials/{trial}/live?after={output['end']}")
    try:
        assert events.until("ready") == {"status": "running"}
        release.touch()
        pushed = events.all_until("end")
    finally:
        events.close()
    # Output (the supervisor's) and statistics (the script's) come as committed; a
    # line may come in pieces (the script's writes are not the supervisor's reads).
    pieces = [data for name, data in pushed if name == "output"]
    assert "".join(piece["text"] for piece in pieces) == "second line\n"  # type: ignore[index]
    assert {piece["stream"] for piece in pieces} == {"stdout"}  # type: ignore[index]
    positions = [piece["position"] for piece in pieces]  # type: ignore[index]
    assert positions == sorted(positions) and positions[0] > output["end"]
    assert [event for event in pushed if event[0] != "output"] == [
        ("statistic", {"records": [{"step": 1, "loss": 0.5}]}),
        ("end", {"status": "completed"}),
    ]
    assert running.wait(60) == 0


@pytest.mark.slow
def test_ctrl_c_stops_the_server_cleanly_even_with_a_stream_open(kleio, script, workdir: Path):
    release = workdir / "release"
    running = kleio.popen("python", script(LIVE), str(release))
    trial = trial_id(wait_for_line(running.stderr, "trial reserved with id: "))
    ui = start_ui(kleio)
    events = Events(ui, f"/api/trials/{trial}/live")
    assert events.until("ready") == {"status": "running"}
    assert stop_ui(ui) == 0
    events.close()
    assert kleio.json("ls")[0]["status"] == "running"  # the trial runs on, untouched
    release.touch()
    assert running.wait(60) == 0


def test_without_its_extra_kleio_ui_says_what_to_install(kleio, tmp_path: Path):
    shadow = tmp_path / "shadow" / "starlette"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no starlette here')\n")
    import os

    env = {**os.environ, "PYTHONPATH": str(shadow.parent)}
    done = kleio("ui", "--no-browser", env=env)
    assert done.returncode == 2
    assert "pip install 'kleio[ui]'" in done.stderr and len(done.stderr.splitlines()) == 1
    assert kleio("--help", env=env).returncode == 0  # the rest of kleio needs none of it


def test_a_port_in_use_is_a_one_line_error(kleio, ui: Ui):
    port = urllib.parse.urlsplit(ui.base).port
    done = kleio("ui", "--no-browser", "--port", str(port))
    assert done.returncode == 1 and f"cannot serve on 127.0.0.1:{port}" in done.stderr
