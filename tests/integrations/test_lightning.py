"""PyTorch Lightning's Trainer journaling through ``KleioLogger``: a real Trainer on a
tiny model on the CPU, as a real `kleio` trial, interrupted with Ctrl-C and re-run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import trial_id
from tests.integrations.frameworks import final_line, interrupted_then_resumed, needs, steps_of

needs("pytorch_lightning", "lightning")

TRAIN = """
    import os, sys, time
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    args = sys.argv[1:]
    if "--unified" in args:  # the `lightning` package
        import lightning.pytorch as pl
        from lightning.pytorch.callbacks import Callback, ModelCheckpoint
    else:
        import pytorch_lightning as pl
        from pytorch_lightning.callbacks import Callback, ModelCheckpoint
    from kleio_client.integrations.lightning import KleioLogger

    hold_at = int(args[args.index("--hold-at") + 1]) if "--hold-at" in args else -1

    class Tiny(pl.LightningModule):
        def __init__(self, lr=0.1):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))

        def training_step(self, batch, index):
            x, y = batch
            loss = nn.functional.mse_loss(self.net(x), y)
            self.log("loss", loss, on_step=True, on_epoch=False)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    class Hold(Callback):  # the test interrupts the first run here
        def on_train_batch_start(self, trainer, module, batch, index):
            if trainer.global_step == hold_at and not os.path.exists("resumed"):
                open("held", "w").close()
                while True:
                    time.sleep(0.05)

    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x.sum(1, keepdim=True)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    torch.manual_seed(1)
    model = Tiny()
    logger = KleioLogger(log_model=True)
    trainer = pl.Trainer(
        max_epochs=4, logger=logger, log_every_n_steps=1, accelerator="cpu",
        enable_progress_bar=False, enable_model_summary=False, deterministic=True,
        callbacks=[ModelCheckpoint(every_n_epochs=1, save_top_k=-1), Hold()],
    )
    trainer.fit(model, loader, ckpt_path=logger.last_checkpoint())
    with torch.no_grad():
        print("final", float(nn.functional.mse_loss(model.net(x), y)))
"""

STEPS = list(range(32))  # 4 epochs of 8 batches


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_interrupted_lightning_run_resumes_from_its_checkpoint_each_step_once(
    kleio, script, workdir: Path
):
    """The uninterrupted run imports `lightning`, the interrupted one `pytorch_lightning`:
    the logger works with both, and both train alike."""
    name = script(TRAIN)
    whole = kleio.ok("python", name, "--unified", timeout=240)
    whole_rows = kleio.json("stats", trial_id(whole.stderr))
    assert steps_of(whole_rows) == STEPS
    assert whole_rows[0] == {"hyperparameters": {"lr": 0.1}}
    assert {row["epoch"] for row in whole_rows if "loss" in row} == {0, 1, 2, 3}

    # Held at step 20, in the third epoch: the last checkpoint is the second epoch's.
    trial, second = interrupted_then_resumed(kleio, workdir, name, "--hold-at", "20")
    info = kleio.json("info", trial)
    assert [e["status"] for e in info["executions"]] == ["interrupted", "completed"]
    loaded = [a for a in info["artifacts"] if a["filename"] == "lightning.ckpt"]
    assert [a["metadata"]["epoch"] for a in loaded] == [0, 1, 2, 3]
    rows = kleio.json("stats", trial)
    assert steps_of(rows) == STEPS  # steps 16 to 19 of the first run are superseded
    assert [r["loss"] for r in rows if "loss" in r] == [
        r["loss"] for r in whole_rows if "loss" in r
    ]
    assert final_line(second) == final_line(whole)
    # Superseded records stay stored, shown on request.
    everything = kleio.json("stats", trial, "--all-executions")
    superseded = [row["record"]["step"] for row in everything if row["superseded"]]
    assert superseded == [16, 17, 18, 19]
