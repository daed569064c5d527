"""`kleio stats --where/--keys/--format`: the records a question needs, in the form wanted."""

from __future__ import annotations

import csv
import io
import json

import pytest

from kleio_client.journal import Journal
from tests.conftest import trial_id

SCRIPT = """
from kleio_client import kleio_logger
for epoch in range(6):
    kleio_logger.log_statistic(epoch=epoch, split="train", loss=1.0 / (epoch + 1))
    kleio_logger.log_statistic(epoch=epoch, split="val", loss=1.5 / (epoch + 1), acc=epoch / 10)
"""


def test_where_keys_and_formats(kleio, script):
    tid = trial_id(kleio.ok("python", script(SCRIPT)).stderr)
    rows = json.loads(
        kleio.ok(
            "stats",
            tid,
            "--where",
            "split=val",
            "--where",
            "epoch>=3",
            "--keys",
            "epoch,acc",
            "--format",
            "json",
        ).stdout
    )
    assert rows == [{"epoch": 3, "acc": 0.3}, {"epoch": 4, "acc": 0.4}, {"epoch": 5, "acc": 0.5}]
    best = json.loads(
        kleio.ok("stats", tid, "--where", "split=val", "--sort", "loss", "--json").stdout
    )
    assert best[0]["epoch"] == 5
    table = kleio.ok("stats", tid, "--where", "loss<0.3", "--keys", "split,epoch").stdout
    assert table.splitlines() == ["split  epoch", "train  3", "train  4", "train  5", "val    5"]
    parsed = list(
        csv.reader(
            io.StringIO(kleio.ok("stats", tid, "--where", "acc!=0.1", "--format", "csv").stdout)
        )
    )
    assert parsed[0] == ["epoch", "split", "loss", "acc"]
    assert len(parsed) == 1 + 12 - 1
    assert parsed[1] == ["0", "train", "1.0", ""]  # a missing value is an empty field


def test_a_malformed_condition_is_one_clear_line(kleio, script):
    tid = trial_id(kleio.ok("python", script(SCRIPT)).stderr)
    done = kleio("stats", tid, "--where", "epoch~3")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--where takes KEY=VALUE" in done.stderr
    garbled = kleio("stats", tid, "--where", "split=\udcff")  # a byte that is not UTF-8
    assert garbled.returncode == 2
    assert garbled.stderr.count("\n") == 1 and "not valid text" in garbled.stderr
    huge = kleio.ok("stats", tid, "--where", "epoch<99999999999999999999999", "--json")
    assert len(json.loads(huge.stdout)) == 12  # past 64 bits: compared as a float


@pytest.mark.slow
def test_ls_filters_by_status_and_draws_branch_trees(kleio, script):
    name = script("""
        import sys
        from kleio_client import kleio_logger
        kleio_logger.log_statistic(step=1)
        sys.exit(3 if "--fail" in sys.argv else 0)
    """)
    root = trial_id(kleio.ok("python", name, "--lr", "0.1").stderr)
    child = trial_id(kleio.ok("branch", root, "--lr", "0.01").stderr)
    grandchild = trial_id(kleio.ok("branch", child, "--lr", "0.001").stderr)
    sibling = trial_id(kleio.ok("branch", root, "--lr", "0.02").stderr)
    broken = trial_id(kleio("python", name, "--fail").stderr)
    lines = kleio.ok("ls", "--tree").stdout.splitlines()[1:]
    drawn = [line.split(" running")[0].split(" completed")[0].split(" broken")[0] for line in lines]
    assert [d.rstrip() for d in drawn] == [
        root[:8],
        f"├─ {child[:8]}",
        f"│  └─ {grandchild[:8]}",
        f"└─ {sibling[:8]}",
        broken[:8],
    ]
    only = kleio.json("ls", "--status", "broken")
    assert [t["id"] for t in only] == [broken]
    assert kleio("ls", "--status", "sleeping").returncode == 2


def test_compare_shows_the_options_that_differ_and_the_last_or_best_statistics(kleio, script):
    name = script("""
        import sys
        from kleio_client import kleio_logger
        lr = float(sys.argv[sys.argv.index("--lr") + 1])
        for epoch in range(4):
            kleio_logger.log_statistic(epoch=epoch, loss=abs(2 - epoch) * lr)
    """)
    a = trial_id(kleio.ok("python", name, "--lr", "0.1", "--seed", "1").stderr)
    b = trial_id(kleio.ok("python", name, "--lr", "0.5", "--seed", "1").stderr)
    lines = kleio.ok("compare", a, b, "--stats", "epoch,loss").stdout.splitlines()
    assert lines[0].split() == ["ID", "--lr", "epoch", "loss"]  # --seed is the same: hidden
    assert lines[1].split() == [a[:8], "0.1", "3", "0.1"]
    assert lines[2].split() == [b[:8], "0.5", "3", "0.5"]
    best = kleio.json("compare", a, b, "--best", "loss")
    assert [row["statistics"] for row in best] == [{"epoch": 2, "loss": 0.0}] * 2
    assert best[0]["configuration"] == {"--lr": 0.1}


def test_tags_at_run_time_and_later_select_trials(kleio, script):
    name = script("print('ok')\n")
    a = trial_id(
        kleio.ok("run", "--tag", "baseline", "--tag", "v1", "python", name, "--x", "1").stderr
    )
    b = trial_id(kleio.ok("python", name, "--x", "2").stderr)
    assert kleio.ok("tag", b[:8], "v1").stdout.strip() == f"{b[:8]}: v1"
    assert [t["id"] for t in kleio.json("ls", "--tag", "v1")] == [a, b]
    assert [t["id"] for t in kleio.json("ls", "--tag", "v1", "--tag", "baseline")] == [a]
    assert kleio.json("tag", a, "baseline", "--remove")["tags"] == ["v1"]
    assert kleio.json("info", a)["tags"] == ["v1"]
    assert "TAGS" in kleio.ok("ls").stdout
    bad = kleio("tag", a, "two words")
    assert bad.returncode == 2 and "without spaces" in bad.stderr


@pytest.mark.slow
def test_plot_in_the_terminal_and_as_a_png(kleio, script, tmp_path):
    name = script("""
        import argparse, io
        from kleio_client import kleio_logger
        parser = argparse.ArgumentParser(); parser.add_argument("--lr", type=float)
        lr = parser.parse_args().lr
        ckpt = kleio_logger.load_artifact("ckpt")
        start = 0 if ckpt is None else int(ckpt.open().read()) + 1
        for epoch in range(start, 20):
            kleio_logger.log_statistic(epoch=epoch, loss=100 - lr * epoch)
            kleio_logger.log_artifact("ckpt", io.BytesIO(b"%d" % epoch), epoch=epoch)
    """)
    parent = trial_id(kleio.ok("python", name, "--lr", "1").stderr)
    child = trial_id(kleio.ok("branch", parent, "--timestamp", "epoch=9", "--lr", "3").stderr)
    chart = kleio.ok(
        "plot", parent, child, "--y", "loss", "--x", "epoch", "--height", "10", "--width", "40"
    ).stdout.splitlines()
    assert chart[0].startswith("100 |")  # the top of the y range
    assert chart[9].startswith(" 43 |")  # the child's last point: 100 - 9 - 3 * 10 - 18
    assert chart[11].split() == ["0", "19"]
    assert chart[-2:] == [f"  * {parent[:8]}", f"  o {child[:8]}"]
    assert sum(line.count("*") for line in chart[:10]) == 10  # the parent's points beyond
    png = tmp_path / "loss.png"
    done = kleio.ok("plot", parent, child, "--y", "loss", "--x", "epoch", "-o", str(png))
    assert done.stdout.strip() == f"wrote {png}"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 800  # 8 x 4.5 inches at 100 dpi
    missing = kleio("plot", parent, "--y", "accuracy")
    assert missing.returncode == 2 and "no record has a number for 'accuracy'" in missing.stderr


@pytest.mark.slow
def test_ls_where_selects_by_the_options_of_the_command_line(kleio, script):
    name = script("print('ok')\n")
    small = trial_id(kleio.ok("python", name, "--lr", "0.001", "--batch-size", "8").stderr)
    large = trial_id(kleio.ok("python", name, "--lr", "0.1", "--batch-size", "8").stderr)
    assert [t["id"] for t in kleio.json("ls", "--where", "lr>0.01")] == [large]
    assert [t["id"] for t in kleio.json("ls", "--where", "batch_size=8", "--where", "lr<0.01")] == [
        small
    ]
    bare = trial_id(kleio.ok("python", name, "data.csv").stderr)
    assert [t["id"] for t in kleio.json("ls", "--where", "lr!=0.1")] == [small, bare]
    kleio.ok("tag", large, "best")
    table = kleio.ok("ls", "--where", "lr>=0.001", "--tag", "best", "--status", "completed")
    assert [line.split()[0] for line in table.stdout.splitlines()] == ["ID", large[:8]]
    refused = kleio("ls", "--where", "lr")
    assert refused.returncode == 2 and "--where takes KEY=VALUE" in refused.stderr


PAGES = """
from kleio_client import kleio_logger
for i in range(70_000):
    record = {"step": i + 0.5 if i == 69_999 else i, "loss": (i * 7919 % 1000) / 1000}
    if i >= 67_000:
        record["note"] = "late"
    if i == 5:
        record["shape"] = (1, 2)
    kleio_logger.log_statistic(**record)
read = kleio_logger.statistics()  # its own history, a page at a time
print("read", len(read), read[-1]["step"], kleio_logger.statistics(note="late")[0]["step"])
"""


@pytest.mark.slow
def test_a_history_of_several_pages_reads_as_one(kleio, script, isolated):
    """`kleio stats` reads the history a page of about 65,536 records at a time, cut into
    columns by the daemon: a key that only later pages hold, and a column of ints whose
    last page holds a float, come out as one table and as the records logged; the Python
    API reads the stored records a page at a time too."""
    done = kleio.ok("python", script(PAGES))
    assert done.stdout.split() == ["read", "70000", "69999.5", "67000"]
    tid = trial_id(done.stderr)
    logged = [
        {
            "step": i + 0.5 if i == 69_999 else i,
            "loss": (i * 7919 % 1000) / 1000,
            **({"note": "late"} if i >= 67_000 else {}),
            **({"shape": [1, 2]} if i == 5 else {}),
        }
        for i in range(70_000)
    ]
    ordered = sorted(logged, key=lambda r: r["loss"])
    assert json.loads(kleio.ok("stats", tid, "--sort", "loss", "--json").stdout) == ordered
    with Journal(str(isolated.kleio_runtime)) as journal:
        assert journal.trial(tid).statistics() == logged
    numbers = json.loads(kleio.ok("stats", tid, "--keys", "step,loss", "--json").stdout)
    assert numbers == [{"step": r["step"], "loss": r["loss"]} for r in logged]
    lines = kleio.ok("stats", tid, "--sort", "loss").stdout.splitlines()
    assert lines[0].split() == ["step", "loss", "shape", "note"] and len(lines) == 70_001
    assert lines[1].split() == ["0", "0", "-", "-"]  # the first of loss 0.0, stable
    assert {line.index(line.split()[1], len(line.split()[0])) for line in lines[1:]} == {
        lines[0].index("loss")
    }  # one column, aligned on every page
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["69999.5"] == ["69999.5", "0.081", "-", "late"]
    assert rows["66999"][3] == "-" and rows["67000"][3] == "late"
    assert "[1, 2]" in next(line for line in lines if line.startswith("5 "))  # as logged


def test_json_and_the_table_sort_a_null_as_a_missing_key(kleio, script):
    tid = trial_id(
        kleio.ok(
            "python",
            script("""
        from kleio_client import kleio_logger
        kleio_logger.log_statistic(i=0)
        kleio_logger.log_statistic(i=1, x=None)
        kleio_logger.log_statistic(i=2, x="s")
        kleio_logger.log_statistic(i=3, x=1.5)
    """),
        ).stderr
    )
    lines = kleio.ok("stats", tid, "--sort", "x").stdout.splitlines()[1:]
    table = [line.split()[0] for line in lines]
    as_json = [r["i"] for r in json.loads(kleio.ok("stats", tid, "--sort", "x", "--json").stdout)]
    assert table == ["3", "2", "0", "1"] and as_json == [3, 2, 0, 1]  # stable among them
