"""scripts/train_shipped_model.py: its recipe, as chapter 06 prints it and as the card records it.

The script trains for hours, so the suite checks what can drift without a run: which stages
``--from-weights`` continues with, that chapter 06's commands are the script's stages, and that
the committed card is what the script writes from the committed JSON.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path

import pytest

from mattingkit.training.loop import _parser

ROOT = Path(__file__).resolve().parents[1]


def test_from_weights_runs_only_the_stages_after_those_that_made_the_weights(train_script):
    stages = list(train_script.STAGE_SEEDS)
    assert train_script.stages_to_run({}) == stages
    assert train_script.stages_to_run({"base": 1.0, "refine": 2.0}) == stages[2:]
    assert train_script.stages_to_run(dict.fromkeys(stages[:3], 1.0)) == stages[3:]
    assert train_script.stages_to_run(dict.fromkeys(stages, 1.0)) == []
    # The shipped file records every stage that made it, so continuing it trains nothing new.
    shipped = json.loads(train_script.WEIGHTS.with_suffix(".json").read_text())
    assert set(shipped["seconds"]) - {"total_wall"} == set(shipped["recipe"]) == set(stages)


def _chapter_06_commands() -> list[list[str]]:
    cells = json.loads((ROOT / "notebooks" / "06_training_on_a_subset.ipynb").read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    commands = re.findall(
        r"^python -m mattingkit\.train (.*?)(?<!\\)$", text.replace("\\\n", " "), re.M
    )
    return [shlex.split(c) for c in commands]


def test_chapter_06_prints_the_script_s_recipe_stage_by_stage(train_script):
    """Each command of chapter 06's recipe gives the TrainConfig of the script's stage, in order
    (output folders, logging and thread settings aside), so a student who types them trains
    what the script trains."""
    commands = _chapter_06_commands()
    assert len(commands) == len(train_script.STAGE_SEEDS)
    ignored = {"out", "init", "resume", "val_every", "val_samples", "checkpoint_every",
               "bn_recalibration", "log_every", "threads", "num_workers"}  # fmt: skip
    for stage, argv in zip(train_script.STAGE_SEEDS, commands):
        typed = vars(_parser().parse_args(argv))
        expected = dataclasses.asdict(
            train_script.stage_config(stage, train_script.FULL[stage], Path("runs"), 0, None)
        )
        for key, value in expected.items():
            if key in ignored:
                continue
            if isinstance(value, float):
                assert typed[key] == pytest.approx(value, abs=1e-4), (stage, key)
            else:
                assert typed[key] == value, (stage, key)
        assert typed["init"] or stage == "base", stage


def test_the_committed_card_is_what_the_script_writes_from_its_json(train_script, tmp_path):
    info = json.loads(train_script.WEIGHTS.with_suffix(".json").read_text())
    train_script.write_card(tmp_path / "README.md", info)
    committed = (train_script.WEIGHTS.parent / "README.md").read_text()
    assert (tmp_path / "README.md").read_text() == committed
    assert "Stage wide" in committed and info["recipe"]["wide"] == train_script.FULL["wide"]
