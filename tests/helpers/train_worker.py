"""One training run in its own process, for the tests that launch ``torchrun`` or kill a run.

    python -m tests.helpers.train_worker MODEL_DIR DATA_JSON OUTPUT_DIR SETTINGS_JSON

``SETTINGS_JSON`` holds ``config`` (TrainConfig fields), optionally ``training_args``,
``resume`` (``resume_from_checkpoint``) and ``die_after_step`` (the process kills itself
with SIGKILL at the end of that optimizer step: a crash, nothing flushed or cleaned up).
The main process writes ``OUTPUT_DIR/worker_result.json`` (losses, the training log).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from unittest import mock


def main(argv: list[str]) -> None:
    model_dir, data, output, settings_file = argv
    settings = json.loads(Path(settings_file).read_text())
    import transformers

    from sftselect.data.io import load_data
    from sftselect.train import TrainConfig, train

    die_after = settings.get("die_after_step")
    if die_after is not None:
        # SIGKILL at the end of optimizer step `die_after` (after any checkpoint of that step)
        original = transformers.Trainer._maybe_log_save_evaluate

        def step_then_maybe_die(self, *args, **kwargs):
            original(self, *args, **kwargs)
            if self.state.global_step >= die_after:
                os.kill(os.getpid(), signal.SIGKILL)

        patch = mock.patch.object(
            transformers.Trainer, "_maybe_log_save_evaluate", step_then_maybe_die
        )
        patch.start()
    result = train(
        model_dir,
        load_data(data),
        output,
        config=TrainConfig(**settings["config"]),
        training_args=settings.get("training_args"),
        resume_from_checkpoint=settings.get("resume"),
    )
    if int(os.environ.get("RANK", "0")) == 0:
        (Path(output) / "worker_result.json").write_text(
            json.dumps({"losses": result.losses, "log": result.log})
        )


if __name__ == "__main__":
    main(sys.argv[1:])
