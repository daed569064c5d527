"""`kleio ui` in a real browser (Debian's headless chromium): the trials page of 10,000
trials rendered, a chart of a 1,000,000-record trial drawn (from a cold server, and again
once the server holds the history), and a live statistic from `log_statistic` to the
page.  Baselines in the same run: the browser loading a static file of the same server,
and the same API request made without a browser."""

from __future__ import annotations

import subprocess
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.benchmarks.harness import Figure, kleio_argv
from tests.benchmarks.journal import MAKE_TRIALS, _served_journal, _trial
from tests.ui.chromium import CHROMEDRIVER, CHROMIUM, FLAGS

LIVE = """
import os, sys, time
from kleio_client import kleio_logger
kleio_logger.log_statistic(step=0, loss=1.0)
kleio_logger.flush()
out = open(sys.argv[2], "w")
for step in range(1, int(sys.argv[3]) + 1):
    while not os.path.exists(f"{sys.argv[1]}.{step}"):
        time.sleep(0.001)
    out.write(f"{time.time()}\\n")
    out.flush()
    kleio_logger.log_statistic(step=step, loss=1.0 / step)
"""


@contextmanager
def _ui(env: dict[str, str]) -> Iterator[str]:
    """`kleio ui` for ``env``'s daemon: its URL with the token."""
    process = subprocess.Popen(
        kleio_argv("ui", "--no-browser", "--port", "0"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("Kleio UI: "), line
        yield line.split(": ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(30)


@contextmanager
def _browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def _until(driver: object, ready: str, timeout: float = 120) -> None:
    """Wait (polling every 5 ms) until the JavaScript expression ``ready`` is true."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.005).until(
        lambda d: d.execute_script(f"return !!({ready})")
    )


def _page_time(driver: object, url: str, ready: str) -> float:
    driver.get("about:blank")  # type: ignore[attr-defined]
    start = time.perf_counter()
    driver.get(url)  # type: ignore[attr-defined]
    _until(driver, ready)
    return time.perf_counter() - start


def _static(driver: object, url: str) -> float:
    base = url.split("/?token=")[0]
    return _page_time(driver, base + "/static/vendor/uPlot.LICENSE", "document.body")


def _fetch(url: str, path: str) -> Callable[[], bytes]:
    base, token = url.split("/?token=")

    def get() -> bytes:
        request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.read()

    return get


ROWS = "document.querySelectorAll('[data-testid=trial-row]').length >= 50"
DRAWN = "document.querySelector('[data-testid=chart][data-state=drawn]')"


def bench_ui(root: Path, env: dict[str, str], runs: int) -> list[Figure]:
    return _trials_page(root, env, runs) + _chart(root, env, runs) + _live(root, env, runs)


def _trials_page(root: Path, env: dict[str, str], runs: int) -> list[Figure]:
    served = _served_journal(root, env, "ui-ls", MAKE_TRIALS, 10_000)
    try:
        with _ui(served) as url, _browser() as driver:
            page, static, api = [], [], []
            for _ in range(runs):
                page.append(_page_time(driver, url + "#/", ROWS))
                static.append(_static(driver, url))
                start = time.perf_counter()
                _fetch(url, "/api/trials?options=1")()
                api.append(time.perf_counter() - start)
    finally:
        subprocess.run(kleio_argv("daemon", "stop"), env=served, capture_output=True)
    return [
        Figure("kleio ui: trials page, 10,000 trials", "s", page, "<= 1 s", static),
        Figure("  /api/trials?options=1 alone, 10,000", "s", api, "(part of it)"),
    ]


def _chart(root: Path, env: dict[str, str], runs: int) -> list[Figure]:
    trial = _trial(root, env, 1_000_000)
    cold, warm, static = [], [], []
    chart = f"#/chart?ids={trial}&y=loss&x=step"
    for _ in range(runs):  # a new server each run: the first drawing reads the history
        with _ui(env) as url, _browser() as driver:
            static.append(_static(driver, url))
            cold.append(_page_time(driver, url + chart, DRAWN))
            warm.append(_page_time(driver, url + chart, DRAWN))
    subprocess.run(kleio_argv("daemon", "stop"), env=env, capture_output=True)
    return [
        Figure("kleio ui: chart of 1,000,000 points", "s", cold, "<= 1 s", static),
        Figure("  again, history held by the server", "s", warm, "<= 1 s", static),
    ]


def _live(root: Path, env: dict[str, str], runs: int) -> list[Figure]:
    """From ``log_statistic`` (the time the script wrote just before the call) to the
    record shown in the trial page's live chart."""
    script = root / "live_ui.py"
    script.write_text(textwrap.dedent(LIVE))
    gate, stamps = root / "gate", root / "stamps"
    steps = max(runs, 5)
    running = subprocess.Popen(
        kleio_argv("python", str(script), str(gate), str(stamps), str(steps)),
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    trial = ""
    while not trial:
        line = running.stderr.readline() if running.stderr else ""
        assert line, "the live trial ended before saying its id"
        if line.startswith("trial reserved with id: "):
            trial = line.split(": ", 1)[1].strip()
    latency = []
    try:
        with _ui(env) as url, _browser() as driver:
            driver.get(url + f"#/trial/{trial}")  # type: ignore[attr-defined]
            _until(
                driver,
                "document.querySelector('[data-testid=live-state]')"
                " && window.kleioLive && window.kleioLive.ready",
            )
            for step in range(1, steps + 1):
                Path(f"{gate}.{step}").touch()
                _until(driver, f"window.kleioLive.last >= {step}", timeout=30)
                shown = driver.execute_script("return window.kleioLive.shownAt")  # type: ignore[attr-defined]
                logged = float(stamps.read_text().split()[step - 1])
                latency.append(shown / 1000 - logged)
    finally:
        for step in range(1, steps + 1):  # a failed run lets the trial end all the same
            Path(f"{gate}.{step}").touch()
        running.wait(60)
    return [
        Figure(
            "kleio ui: live statistic, logged to shown",
            "ms",
            [s * 1000 for s in latency],
            "<= 300 ms",
        )
    ]
