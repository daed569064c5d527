"""Hugging Face's Trainer journaling through ``KleioCallback``: a real Trainer on a
two-layer ``BertConfig`` model with token ids made in the script (no hub, no tokenizer),
on the CPU, as a real `kleio` trial, interrupted with Ctrl-C and re-run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import trial_id
from tests.integrations.frameworks import final_line, interrupted_then_resumed, needs, steps_of

needs("transformers", "accelerate")

TRAIN = """
    import os, sys, time
    import torch
    from transformers import (
        BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments,
    )
    from kleio_client.integrations.transformers import KleioCallback

    args = sys.argv[1:]
    hold_at = int(args[args.index("--hold-at") + 1]) if "--hold-at" in args else -1

    class Data(torch.utils.data.Dataset):
        def __init__(self):
            ids = torch.randint(0, 50, (32, 8), generator=torch.Generator().manual_seed(0))
            self.ids, self.labels = ids, (ids[:, 0] > 25).long()

        def __len__(self):
            return len(self.ids)

        def __getitem__(self, i):
            return {"input_ids": self.ids[i], "labels": self.labels[i]}

    class Hold(TrainerCallback):  # the test interrupts the first run here
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == hold_at and not os.path.exists("resumed"):
                open("held", "w").close()
                while True:
                    time.sleep(0.05)

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2,
    )
    model = BertForSequenceClassification(config)
    arguments = TrainingArguments(
        output_dir="out", per_device_train_batch_size=8, num_train_epochs=3, logging_steps=1,
        save_steps=4, report_to=[], use_cpu=True, seed=0, disable_tqdm=True,
    )
    callback = KleioCallback(log_checkpoints=True)
    trainer = Trainer(
        model=model, args=arguments, train_dataset=Data(), callbacks=[callback, Hold()]
    )
    trainer.train(resume_from_checkpoint=callback.last_checkpoint(arguments.output_dir))
    print("final", trainer.evaluate(Data())["eval_loss"])
"""

STEPS = list(range(1, 13))  # 3 epochs of 4 batches


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_interrupted_trainer_resumes_from_its_journaled_checkpoint_each_step_once(
    kleio, script, workdir: Path
):
    name = script(TRAIN)
    whole = kleio.ok("python", name, "--run", "whole", timeout=240)
    whole_rows = kleio.json("stats", trial_id(whole.stderr))
    logged = [row for row in whole_rows if "loss" in row]
    assert steps_of(logged) == STEPS
    assert [row["epoch"] for row in logged] == [step / 4 for step in STEPS]
    assert all("learning_rate" in row for row in logged)
    shutil.rmtree(workdir / "out")

    # Held before step 7: the last checkpoint is step 4's.  Its directory is removed
    # before the re-run, so the checkpoint comes from the journal.
    out = workdir / "out"
    trial, second = interrupted_then_resumed(
        kleio, workdir, name, "--hold-at", "6", between=lambda: shutil.rmtree(out)
    )
    info = kleio.json("info", trial)
    assert [e["status"] for e in info["executions"]] == ["interrupted", "completed"]
    checkpoints = [a["metadata"] for a in info["artifacts"]]
    assert [c["step"] for c in checkpoints] == [4, 8, 12]
    assert checkpoints[0]["checkpoint"] == "checkpoint-4"
    rows = [row for row in kleio.json("stats", trial) if "loss" in row]
    assert steps_of(rows) == STEPS  # steps 5 and 6 of the first run are superseded
    assert [row["loss"] for row in rows] == [row["loss"] for row in logged]
    assert final_line(second) == final_line(whole)
    assert (out / "checkpoint-4").is_dir()  # unpacked from the journal
