"""Keras's ``fit`` journaling through ``KleioCallback``: Keras 3 on the torch backend, a
one-layer model, on the CPU, as a real `kleio` trial, interrupted with Ctrl-C and re-run
from the weights it journaled."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import trial_id
from tests.integrations.frameworks import final_line, interrupted_then_resumed, needs, steps_of

needs("keras")

TRAIN = """
    import os, sys, time
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import numpy as np
    import keras
    from kleio_client.integrations.keras import KleioCallback

    args = sys.argv[1:]
    hold_at = int(args[args.index("--hold-at") + 1]) if "--hold-at" in args else -1

    class Hold(keras.callbacks.Callback):  # the test interrupts the first run here
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == hold_at and not os.path.exists("resumed"):
                open("held", "w").close()
                while True:
                    time.sleep(0.05)

    keras.utils.set_random_seed(0)
    x = np.random.RandomState(0).randn(64, 4).astype("float32")
    y = x.sum(1, keepdims=True)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    callback = KleioCallback(log_weights=True)
    start = callback.resume(model)
    model.fit(
        x, y, batch_size=16, epochs=5, initial_epoch=start, shuffle=False, verbose=0,
        callbacks=[callback, Hold()],
    )
    print("final", model.evaluate(x, y, verbose=0))
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_interrupted_fit_resumes_from_its_journaled_weights_each_batch_once(
    kleio, script, workdir: Path
):
    name = script(TRAIN)
    whole = kleio.ok("python", name, "--run", "whole", timeout=240)
    whole_rows = kleio.json("stats", trial_id(whole.stderr))
    assert steps_of(whole_rows) == list(range(1, 21))  # 5 epochs of 4 batches
    epochs = [row for row in whole_rows if row.get("batch") is None]
    assert [row["epoch"] for row in epochs] == [0, 1, 2, 3, 4]
    assert all(isinstance(row["loss"], float) for row in whole_rows)

    # Held as the fourth epoch begins: resumed from the third epoch's weights.
    trial, second = interrupted_then_resumed(kleio, workdir, name, "--hold-at", "3")
    info = kleio.json("info", trial)
    assert [e["status"] for e in info["executions"]] == ["interrupted", "completed"]
    assert [a["metadata"]["epoch"] for a in info["artifacts"]] == [0, 1, 2, 3, 4]
    rows = kleio.json("stats", trial)
    assert steps_of(rows) == list(range(1, 21))
    assert [row["loss"] for row in rows] == [row["loss"] for row in whole_rows]
    assert final_line(second) == final_line(whole)
