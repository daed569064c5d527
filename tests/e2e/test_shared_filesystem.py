"""A SQLite journal on a network filesystem: refused by default, and when allowed,
written by one machine at a time.

Each "node" runs the real ``kleio`` in its own user, mount and UTS namespaces
(``unshare``): its own hostname, its own runtime directory (so its own daemon),
and a mount table in which the journal's directory is an NFS mount, as
``/etc/mtab`` reports it on a cluster node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from kleiod.storage import claim
from tests.conftest import _stop_daemon

ON_NODE = r"""
set -e
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$3/upper,workdir=$3/work" /etc
rm /etc/mtab
{ cat /proc/self/mounts; echo "filer:/export/home $2 nfs4 rw,relatime,vers=4.2 0 0"; } > /etc/mtab
hostname "$1"
shift 3
exec "$@"
"""


@dataclass
class Node:
    host: str
    shared: Path  # the directory reported as NFS
    runtime: Path
    cwd: Path

    def kleio(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        scratch = Path(tempfile.mkdtemp(prefix="node-"))
        (scratch / "upper").mkdir()
        (scratch / "work").mkdir()
        argv = [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "--uts",
            "--",
            "sh",
            "-c",
            ON_NODE,
            "sh",
            self.host,
            str(self.shared),
            str(scratch),
            sys.executable,
            "-m",
            "kleio_cli",
            *args,
        ]
        environ = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_DATA_HOME": str(self.shared),
            **env,
        }
        return subprocess.run(
            argv, cwd=self.cwd, env=environ, capture_output=True, text=True, timeout=90
        )


@pytest.fixture
def nodes(tmp_path, workdir):
    shared = tmp_path / "home"
    shared.mkdir()
    made = [
        Node(host, shared, Path(tempfile.mkdtemp(prefix="k", dir="/tmp")), workdir)
        for host in ("node-a", "node-b")
    ]
    yield made
    for node in made:
        _stop_daemon(node.runtime / "kleio")


TRAIN = "from kleio_client import kleio_logger\nkleio_logger.log_statistic(step=1)\n"


def test_a_journal_on_nfs_is_refused_with_where_to_go(nodes, script):
    name = script(TRAIN)
    done = nodes[0].kleio("python", name)
    assert done.returncode != 0
    message = done.stderr.strip().splitlines()[-1]
    assert "network filesystem (nfs4)" in message, done.stderr
    assert "mongodb://" in message and "KLEIO_ALLOW_NETWORK_FILESYSTEM" in message
    assert not (nodes[0].shared / "kleio" / "journal.sqlite").exists()


@pytest.mark.slow
def test_allowed_on_nfs_one_machine_at_a_time(nodes, script):
    a, b = nodes
    name = script(TRAIN)
    first = a.kleio("python", name, KLEIO_ALLOW_NETWORK_FILESYSTEM="1")
    assert first.returncode == 0, first.stderr
    holder = json.loads((a.shared / "kleio" / "journal.sqlite.host").read_text())
    assert holder["host"] == "node-a"

    refused = b.kleio("ls", KLEIO_ALLOW_NETWORK_FILESYSTEM="1")
    assert refused.returncode != 0
    assert "in use by kleiod on node-a" in refused.stderr, refused.stderr

    assert a.kleio("daemon", "stop").returncode == 0
    assert not (a.shared / "kleio" / "journal.sqlite.host").exists()
    listed = b.kleio("ls", "--json", KLEIO_ALLOW_NETWORK_FILESYSTEM="1")
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 1


def test_a_claim_left_by_a_dead_node_is_taken_over_once_stale(nodes, script):
    b = nodes[1]
    journal = b.shared / "kleio" / "journal.sqlite"
    journal.parent.mkdir()
    stale = {"host": "node-gone", "pid": 1, "heartbeat": time.time() - claim.STALE_SECONDS - 5}
    Path(f"{journal}.host").write_text(json.dumps(stale))
    done = b.kleio("python", script(TRAIN), KLEIO_ALLOW_NETWORK_FILESYSTEM="1")
    assert done.returncode == 0, done.stderr
    assert json.loads(Path(f"{journal}.host").read_text())["host"] == "node-b"


def test_a_daemon_whose_claim_was_taken_stops_writing_and_keeps_the_records(tmp_path):
    from kleiod.errors import StorageError

    journal = tmp_path / "journal.sqlite"
    mine = claim.HostClaim(journal, host="node-a")
    mine.acquire()
    try:
        mine.check()
        Path(f"{journal}.host").write_text("{half a claim")  # a server hiccup: tried again
        mine.renew()
        mine.check()
        Path(f"{journal}.host").write_text(
            json.dumps({"host": "node-b", "pid": 7, "heartbeat": time.time()})
        )
        mine.renew()  # what its thread does every REFRESH_SECONDS
        with pytest.raises(StorageError, match="taken over by kleiod on node-b"):
            mine.check()
    finally:
        mine.release()
    assert Path(f"{journal}.host").exists()  # node-b's claim stays
