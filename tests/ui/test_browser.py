"""`kleio ui`'s pages in a real browser: Debian's chromium, headless, driven by selenium
through the system chromedriver, against a real `kleio ui` serving a journal made by real
trials.  Tests wait for states the page reaches (WebDriverWait on conditions), never for
a fixed time.

With ``KLEIO_UI_SCREENSHOT=1`` the chart test also saves ``docs/ui.png`` (the README's
screenshot); without it, nothing under ``docs/`` is written.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Kleio, trial_id, wait_for_line
from tests.ui.chromium import CHROMEDRIVER, CHROMIUM, FLAGS
from tests.ui.conftest import Ui

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        "the browser tests need Debian's chromium and chromedriver: "
        "apt-get install chromium chromium-driver",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402  (only where a browser can run)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

PAGE_LOAD = 60.0  # seconds a page may take to show what it read (a loaded CI machine)
LIVE = 1.0  # seconds from a running trial's print to its line on the page
SCREENSHOT = REPO / "docs" / "ui.png"
# Read at import: every test runs without the KLEIO_* variables of the shell.
TAKE_SCREENSHOT = os.environ.get("KLEIO_UI_SCREENSHOT") == "1"

SWEEP = """
    import math, random, sys
    from kleio_client import kleio_logger
    lr = float(sys.argv[sys.argv.index("--lr") + 1])
    random.seed(int(lr * 1000))
    for step in range(300):
        loss = math.exp(-lr * step / 10) + 0.05 * random.random()
        kleio_logger.log_statistic(step=step, loss=loss, split="train")
        if step % 50 == 49:
            kleio_logger.log_statistic(step=step, accuracy=1 - loss, split="val")
    print(f"lr {lr}: done")
"""


@pytest.fixture
def expected_errors() -> list[str]:
    """What the browser's console may report because the test provokes it (a refused
    request): parts of the messages."""
    return []


@pytest.fixture
def browser(tmp_path: Path, expected_errors: list[str]) -> Iterator[WebDriver]:
    """Headless chromium with a profile of its own; at the end, no error in its console."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(PAGE_LOAD)
    yield driver
    logged = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    driver.quit()
    errors = [m for m in logged if not any(e in m for e in expected_errors)]
    assert not errors, f"the page logged errors: {errors}"


def sweep(kleio: Kleio, script, *lrs: str) -> list[str]:
    name = script(SWEEP)
    return [trial_id(kleio.ok("python", name, "--lr", lr).stderr) for lr in lrs]


def wait(driver: WebDriver, timeout: float = PAGE_LOAD) -> WebDriverWait:
    return WebDriverWait(driver, timeout, poll_frequency=0.02)


def by_testid(driver: WebDriver | WebElement, name: str) -> WebElement:
    """The element named ``name`` for tests, once the page has drawn it."""
    return WebDriverWait(driver, PAGE_LOAD, poll_frequency=0.02).until(
        lambda d: d.find_element(By.CSS_SELECTOR, f'[data-testid="{name}"]')
    )


def all_by_testid(driver: WebDriver | WebElement, name: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{name}"]')


def open_page(driver: WebDriver, ui: Ui, hash_: str = "#/") -> None:
    driver.get(ui.url + hash_)


def rows_by_id(driver: WebDriver) -> dict[str, WebElement]:
    return {str(row.get_attribute("data-id")): row for row in all_by_testid(driver, "trial-row")}


def shown_rows(driver: WebDriver, count: int) -> dict[str, WebElement]:
    """The table's rows, once it shows ``count`` of them."""
    wait(driver).until(lambda d: len(all_by_testid(d, "trial-row")) == count)
    return rows_by_id(driver)


def points(chart: WebElement) -> int:
    """How many points a chart draws (its curves' rows as the server sent them)."""
    return int(chart.get_attribute("data-points") or 0)


def painted_pixels(driver: WebDriver, canvas: WebElement) -> int:
    """How many pixels of ``canvas`` are not transparent."""
    return int(
        driver.execute_script(
            """
            const c = arguments[0];
            const pixels = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let painted = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) painted++;
            return painted;
            """,
            canvas,
        )
    )


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_trials_table_lists_real_trials_with_their_statuses_and_the_options_that_differ(
    kleio, script, ui: Ui, browser: WebDriver, expected_errors: list[str]
):
    ids = sweep(kleio, script, "0.1", "0.2")
    broken_script = script("raise SystemExit('diverged')\n", name="broken.py")
    broken = trial_id(kleio("python", broken_script, "--lr", "9").stderr)
    child = trial_id(kleio.ok("branch", ids[0], "--timestamp", "step=100", "--lr", "0.05").stderr)
    statuses = {t["id"]: t["status"] for t in ui.json("/api/trials")}
    assert statuses[broken] != "completed"

    open_page(browser, ui)
    rows = shown_rows(browser, 4)
    assert {i: row.get_attribute("data-status") for i, row in rows.items()} == statuses
    for trial, row in rows.items():
        assert by_testid(row, "trial-status").text == statuses[trial]
    lr = by_testid(browser, "column-option:lr")
    assert lr.text == "lr"
    cells = {i: row.find_element(By.CSS_SELECTOR, "td.option").text for i, row in rows.items()}
    assert cells == {ids[0]: "0.1", ids[1]: "0.2", broken: "9", child: "0.05"}

    # The branch comes right under its parent, indented, in the default order as when
    # sorted by another column.
    for sort in (None, "column-option:lr"):
        if sort:
            by_testid(browser, sort).click()
            wait(browser).until(lambda d: "sort=option" in d.current_url)
        order = [row.get_attribute("data-id") for row in all_by_testid(browser, "trial-row")]
        assert order[order.index(ids[0]) + 1] == child
        assert rows_by_id(browser)[child].find_elements(By.CSS_SELECTOR, ".branch-mark")

    Select(by_testid(browser, "filter-status")).select_by_value(statuses[broken])
    assert list(shown_rows(browser, 1)) == [broken]
    Select(by_testid(browser, "filter-status")).select_by_value("")
    shown_rows(browser, 4)

    where = by_testid(browser, "filter-where")
    where.send_keys("lr>0.15", Keys.ENTER)
    assert set(shown_rows(browser, 2)) == {ids[1], broken}
    where.clear()
    expected_errors.append("status of 400")
    where.send_keys("lr", Keys.ENTER)
    error = by_testid(browser, "where-error")
    wait(browser).until(lambda d: error.is_displayed())
    assert "KEY=VALUE" in error.text

    by_testid(browser, "filter-command").send_keys("broken")
    assert list(shown_rows(browser, 1)) == [broken]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_selected_trials_are_compared_side_by_side(kleio, script, ui: Ui, browser: WebDriver):
    ids = sweep(kleio, script, "0.1", "0.2", "0.4")
    open_page(browser, ui)
    shown_rows(browser, 3)
    for trial in ids[:2]:  # each click draws the table again: its rows anew
        by_testid(rows_by_id(browser)[trial], "select-trial").click()
    compare = by_testid(browser, "compare-selected")
    wait(browser).until(lambda d: compare.is_enabled())
    compare.click()

    options = wait(browser).until(lambda d: by_testid(d, "compare-options"))
    lr = wait(browser).until(lambda d: options.find_element(By.CSS_SELECTOR, '[data-option="lr"]'))
    assert lr.text.split() == ["lr", "0.1", "0.2"]
    diff = by_testid(browser, "compare-diff")
    wait(browser).until(lambda d: "--lr 0.1 -> 0.2" in diff.text)
    stats = by_testid(browser, "compare-stats")
    wait(browser).until(lambda d: "loss last" in stats.text and "accuracy max" in stats.text)
    assert stats.find_elements(By.CSS_SELECTOR, "td.best")
    canvas = by_testid(browser, "parallel")
    wait(browser).until(lambda d: painted_pixels(d, canvas) > 1000)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_chart_is_drawn_for_a_trials_statistic_and_zooms_at_full_resolution(
    kleio, script, ui: Ui, browser: WebDriver
):
    ids = sweep(kleio, script, "0.1", "0.3", "1.0")
    open_page(browser, ui, f"#/chart?ids={','.join(ids)}&y=loss&x=step")
    chart = by_testid(browser, "chart")
    wait(browser).until(lambda d: chart.get_attribute("data-state") == "drawn")
    canvas = chart.find_element(By.CSS_SELECTOR, ".uplot canvas")
    assert painted_pixels(browser, canvas) > 5000
    assert points(chart) == 3 * 300  # fewer than 2 per pixel
    legend = chart.find_element(By.CSS_SELECTOR, ".u-legend").text
    assert "lr=0.1" in legend and "lr=1" in legend
    # Each curve was asked for thinned to the plot's width in pixels.
    asked = browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
        ".filter((name) => name.includes('/statistics?'))"
    )
    assert len(asked) == 3
    assert all(f"points={int(canvas.size['width'])}" in url for url in asked), asked

    # Drag across the middle: the range is read again, with no more points than pixels.
    over = chart.find_element(By.CSS_SELECTOR, ".u-over")
    width = over.size["width"]
    ActionChains(browser).move_to_element_with_offset(
        over, -width // 4, 0
    ).click_and_hold().move_by_offset(width // 2, 0).release().perform()
    wait(browser).until(
        lambda d: "from=" in d.current_url and chart.get_attribute("data-state") == "drawn"
    )
    zoomed = points(chart)
    assert 0 < zoomed < 3 * 300
    ActionChains(browser).double_click(over).perform()
    wait(browser).until(
        lambda d: "from=" not in d.current_url and chart.get_attribute("data-points") == "900"
    )

    # Smoothing draws each curve twice (faint raw, smoothed); the log scale keeps it drawn.
    browser.execute_script(
        "const s = arguments[0]; s.value = '0.8'; s.dispatchEvent(new Event('input'));"
        " s.dispatchEvent(new Event('change'));",
        by_testid(browser, "chart-smooth"),
    )
    wait(browser).until(lambda d: "smooth=0.8" in d.current_url)
    entries = chart.find_elements(By.CSS_SELECTOR, ".u-legend .u-series")
    assert len(entries) == 1 + 2 * 3  # x, then each trial's raw and smoothed curves
    assert len([e for e in entries if e.is_displayed()]) == 1 + 3  # the raw ones unlisted
    if TAKE_SCREENSHOT:
        SCREENSHOT.parent.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(SCREENSHOT))
    by_testid(browser, "chart-log").click()
    wait(browser).until(lambda d: "log=1" in d.current_url)
    canvas = chart.find_element(By.CSS_SELECTOR, ".uplot canvas")
    assert painted_pixels(browser, canvas) > 5000

    where = by_testid(browser, "chart-where")
    where.send_keys("split=val", Keys.ENTER)
    wait(browser).until(
        lambda d: "where=split" in d.current_url and chart.get_attribute("data-points") == "0"
    )
    Select(by_testid(browser, "chart-y")).select_by_value("accuracy")
    wait(browser).until(lambda d: chart.get_attribute("data-points") == str(3 * 6))


LIVE_SCRIPT = """
    import os, sys, time
    from kleio_client import kleio_logger
    go, finish = sys.argv[1], sys.argv[2]
    kleio_logger.log_statistic(step=0, loss=1.0)
    print("first line, before the file", flush=True)
    deadline = time.monotonic() + 200
    while not os.path.exists(go):
        assert time.monotonic() < deadline, "the test never created the file"
        time.sleep(0.005)
    print("\\rsecond line 7f3a9c: the file is there", flush=True)
    kleio_logger.log_statistic(step=1, loss=0.5)
    while not os.path.exists(finish):
        assert time.monotonic() < deadline, "the test never let the trial end"
        time.sleep(0.005)
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_live_output_of_a_running_trial_appears_within_a_second(
    kleio, script, workdir: Path, ui: Ui, browser: WebDriver
):
    name = script(LIVE_SCRIPT)
    go, finish = workdir / "go", workdir / "finish"
    process = kleio.popen("python", name, str(go), str(finish))
    try:
        trial = trial_id(wait_for_line(process.stderr, "trial reserved with id: "))
        wait_for_line(process.stdout, "first line")
        open_page(browser, ui, f"#/trial/{trial}")
        output = by_testid(browser, "output")
        live = by_testid(browser, "live-state")
        chart = by_testid(browser, "live-chart")
        # Loaded, and following: the stream is open before the file appears.
        wait(browser).until(lambda d: "first line" in output.text and live.is_displayed())
        wait(browser).until(lambda d: chart.get_attribute("data-points") == "1")
        assert by_testid(browser, "trial-status").text == "running"

        go.touch()
        wait(browser, LIVE).until(lambda d: "second line 7f3a9c" in output.text)
        wait(browser, LIVE).until(lambda d: chart.get_attribute("data-points") == "2")
        assert output.text.splitlines()[-1] == "second line 7f3a9c: the file is there"

        finish.touch()
        assert process.wait(PAGE_LOAD) == 0
        wait(browser).until(lambda d: by_testid(d, "trial-status").text == "completed")
        assert not live.is_displayed()
    finally:
        finish.touch()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(PAGE_LOAD)
            except subprocess.TimeoutExpired:
                process.kill()
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


TRIAL_SCRIPT = """
    import sys
    from kleio_client import kleio_logger
    for step in range(20):
        kleio_logger.log_statistic(step=step, loss=1 / (step + 1))
    kleio_logger.log_artifact("weights.bin", b"0123456789" * 10, epoch=3)
    print("progress 10%\\rprogress 50%\\rprogress 100%")
    print("a warning", file=sys.stderr, flush=True)
    print("done")
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_trial_page_shows_what_kleio_info_says(
    kleio, script, workdir: Path, ui: Ui, browser: WebDriver
):
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
            cwd=workdir,
            check=True,
            capture_output=True,
        )

    name = script(TRIAL_SCRIPT)
    git("init", "-q", ".")
    git("add", name)
    git("commit", "-q", "-m", "the script")
    with open(workdir / name, "a") as changed:
        changed.write("# an uncommitted change\n")
    trial = trial_id(kleio.ok("python", name, "--lr", "0.1").stderr)

    open_page(browser, ui, f"#/trial/{trial[:8]}")
    output = by_testid(browser, "output")
    wait(browser).until(lambda d: output.get_attribute("data-state") == "read")
    assert output.text == kleio.ok("cat", trial).stdout.rstrip("\n")
    assert "progress 100%" in output.text and "progress 10%" not in output.text
    assert by_testid(browser, "trial-status").text == "completed"
    assert trial in browser.find_element(By.CSS_SELECTOR, "table.pairs").text
    assert "--lr" in by_testid(browser, "configuration").text
    executions = by_testid(browser, "executions").text
    assert "completed" in executions and "from scratch" in executions
    patch = by_testid(browser, "patch")
    added = patch.find_element(By.CSS_SELECTOR, ".diff-add")
    assert added.text == "+# an uncommitted change"
    assert "rgb" in added.value_of_css_property("background-color")
    packages = by_testid(browser, "packages").text
    assert "packages" in packages
    link = by_testid(browser, "artifact-link")
    assert link.text == "weights.bin"
    assert "epoch=3" in by_testid(browser, "artifacts").text
    downloaded = browser.execute_async_script(
        "const done = arguments[1];"
        " fetch(arguments[0]).then((r) => r.text()).then(done, (e) => done(String(e)));",
        link.get_attribute("href"),
    )
    assert downloaded == "0123456789" * 10
    chart = by_testid(browser, "live-chart")
    wait(browser).until(lambda d: chart.get_attribute("data-points") == "20")


@pytest.mark.timeout(240)
def test_a_page_whose_token_is_gone_says_how_to_get_it(
    kleio, script, ui: Ui, browser: WebDriver, expected_errors: list[str]
):
    sweep(kleio, script, "0.1")
    open_page(browser, ui)
    shown_rows(browser, 1)
    assert "token" not in browser.current_url  # the cookie carries it from now on
    browser.refresh()
    shown_rows(browser, 1)
    expected_errors.append("status of 401")
    browser.delete_all_cookies()  # as after `kleio ui` restarted with another token
    by_testid(browser, "trial-link").click()
    banner = by_testid(browser, "banner")
    wait(browser).until(lambda d: banner.is_displayed())
    assert "open the URL that `kleio ui` printed" in banner.text


HELPERS = """
const done = arguments[0];
(async () => {
  const util = await import("/static/util.js");
  const plot = await import("/static/plot.js");
  const trials = await import("/static/trials.js");
  const box = document.createElement("pre");
  const terminal = new util.Terminal(box);
  const seen = [];
  terminal.start("started\\nprogress 5%");
  seen.push(box.textContent);
  terminal.write("stdout", "\\rprogress 50%\\r");
  seen.push(box.textContent);
  terminal.write("stdout", "progress 100%\\r\\nnext line\\n");
  seen.push(box.textContent);
  terminal.write("stderr", "warn");
  terminal.write("stdout", "half a line");
  seen.push(box.textContent);
  terminal.write("stderr", "ing\\n");
  seen.push(box.textContent);
  const rows = [
    { id: "a", parent: null, lr: 0.1 }, { id: "b", parent: null, lr: 0.3 },
    { id: "c", parent: "a", lr: 0.5 }, { id: "d", parent: "c", lr: 0.2 },
    { id: "e", parent: "gone", lr: null },
  ];
  const order = (descending, tree) =>
    trials.inOrder(rows, (r) => r.lr, descending, tree).map(([r, depth]) => r.id + depth);
  return {
    terminal: seen,
    tree: order(true, true),
    flat: order(false, false),
    ema: plot.ema([1, null, 3], 0.5),
    keys: util.parseKeys("loss, val_acc, acc:min,  err:max"),
    differing: util.differingOptions([{ lr: 1, b: 2 }, { lr: 2, b: 2 }, { b: 2, c: "x" }]),
    options: util.optionsOf({ options: { "--batch-size": 8, "-v": true } }),
    scales: [[0.001, 0.1], [1, 2], ["adam", "sgd"]].map((v) => plot.axisScale(v).kind),
    numbers: [0.000012345, 123456789, 0.1 + 0.2, 3].map(util.fmtNumber),
  };
})().then(done, (error) => done(String(error.stack || error)));
"""


@pytest.mark.timeout(120)
def test_the_pages_helpers_collapse_carriage_returns_order_trees_and_smooth(
    ui: Ui, browser: WebDriver
):
    open_page(browser, ui)
    by_testid(browser, "trials-table")
    found = browser.execute_async_script(HELPERS)
    assert isinstance(found, dict), found
    assert found["terminal"] == [
        "started\nprogress 5%",
        "started\nprogress 50%",  # a trailing \r waits for what rewrites the line
        "started\nprogress 100%\nnext line\n",
        "started\nprogress 100%\nnext line\nhalf a line\nwarn",  # each stream's own line
        "started\nprogress 100%\nnext line\nwarning\nhalf a line",
    ]
    # Children under their parent (sorted among themselves), an orphan a root; missing
    # values last whichever the direction.
    assert found["tree"] == ["b0", "a0", "c1", "d2", "e0"]
    assert found["flat"] == ["a0", "d0", "b0", "c0", "e0"]
    assert found["ema"] == [1, None, pytest.approx((0.25 + 1.5) / 0.75)]
    assert found["keys"] == [
        {"key": "loss", "best": "min"},
        {"key": "val_acc", "best": "max"},
        {"key": "acc", "best": "min"},
        {"key": "err", "best": "max"},
    ]
    assert found["differing"] == ["c", "lr"]
    assert found["options"] == {"batch_size": 8, "v": True}
    assert found["scales"] == ["log", "number", "category"]
    assert found["numbers"] == ["1.234e-5", "123456789", "0.3", "3"]
