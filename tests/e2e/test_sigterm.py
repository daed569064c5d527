"""SIGTERM under kleio ends the script as the default disposition would, after a flush,
wherever the signal lands; the client's own thread never takes the script's signals."""

from __future__ import annotations

import signal

from tests.conftest import trial_id


def test_a_sigterm_taken_by_another_thread_still_ends_a_blocked_main_thread(kleio, script):
    """Python runs handlers in the main thread only: here the signal lands on a thread of
    the script while the main thread blocks in a read that nothing would interrupt.
    Kleio's I/O thread sees it on the wakeup fd and sends it on to the main thread."""
    name = script("""
        import os, platform, signal, threading, time
        from kleio_client import kleio_logger
        for step in range(100):
            kleio_logger.log_statistic(step=step)
        reader, _ = os.pipe()
        main = threading.get_native_id()
        READ = {"x86_64": "0", "aarch64": "63"}[platform.machine()]

        def bystander():  # takes the signal once the main thread blocks in its read
            while open(f"/proc/self/task/{main}/syscall").read().split()[0] != READ:
                time.sleep(0.001)
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
            threading.Event().wait()

        threading.Thread(target=bystander, daemon=True).start()
        os.read(reader, 1)  # blocks for ever unless the handler runs
        print("read returned", flush=True)
    """)
    done = kleio("python", name, timeout=60)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert "read returned" not in done.stdout
    tid = trial_id(done.stderr)
    assert [r["step"] for r in kleio.json("stats", tid)] == list(range(100))


def test_the_io_thread_blocks_every_signal(kleio, script):
    name = script("""
        import os, threading
        from kleio_client import kleio_logger
        kleio_logger.log_statistic(step=0)
        for thread in threading.enumerate():
            if thread.name == "kleio-io":
                path = f"/proc/self/task/{thread.native_id}/status"
                line = [s for s in open(path) if s.startswith("SigBlk:")][0]
                print("blocked", line.split()[1], flush=True)
    """)
    done = kleio.ok("python", name)
    mask = int(done.stdout.split("blocked ")[1], 16)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGCHLD):
        assert mask & (1 << (signum - 1)), f"{signum!r} not blocked in kleio-io: {mask:x}"


def test_a_script_with_its_own_wakeup_fd_keeps_it(kleio, script):
    """An event loop's wakeup fd, set before the first record, is the script's still."""
    name = script("""
        import os, signal
        reader, writer = os.pipe()
        os.set_blocking(writer, False)
        signal.set_wakeup_fd(writer)
        from kleio_client import kleio_logger
        kleio_logger.log_statistic(step=0)
        print("kept", signal.set_wakeup_fd(-1) == writer, flush=True)
    """)
    assert "kept True" in kleio.ok("python", name).stdout
