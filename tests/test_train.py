"""Tests of mattingkit.training.loop: real model, real losses, tiny images (64x64), a few steps."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mattingkit.core.model import MattingBase, MattingRefine
from mattingkit.core.paper import REFINE_SHARE
from mattingkit.data.synthetic import SyntheticMattingDataset
from mattingkit.notebook.plotting import LiveLossPlot
from mattingkit.training import checkpoint as C
from mattingkit.training import loop as T

REPO = Path(__file__).resolve().parents[1]


def tiny_config(tmp_path: Path, **overrides) -> T.TrainConfig:
    settings = dict(
        stage="base",
        steps=4,
        batch_size=2,
        size=64,
        out=str(tmp_path / "run"),
        val_every=0,
        val_samples=2,
        checkpoint_every=2,
        log_every=1,
        progress=False,
        threads=1,
    )
    settings.update(overrides)
    return T.TrainConfig(**settings)


def fixed_batch(size: int = 64, batch: int = 2):
    data = SyntheticMattingDataset(batch, (size, size), seed=3)
    items = [data[i] for i in range(batch)]
    fgr = torch.stack([i["fgr"] for i in items])
    pha = torch.stack([i["pha"] for i in items])
    bgr = torch.stack([i["bgr"] for i in items])
    return pha * fgr + (1 - pha) * bgr, bgr, fgr, pha


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mattingkit.training.loop", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


# ------------------------------------------------------------------------------------------------
# Learning
# ------------------------------------------------------------------------------------------------


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = MattingBase("mobilenetv2").train()
    config = T.TrainConfig(lr_scale=5.0)
    optimizer = T._build_optimizer(model, config)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    src, bgr, fgr, pha = fixed_batch()
    losses = [
        T.training_step(model, optimizer, scaler, src, bgr, pha, fgr, stage="base")[0].item()
        for _ in range(12)
    ]
    assert losses[-1] < 0.7 * losses[0], losses


def test_refine_stage_step_trains_the_refiner():
    torch.manual_seed(0)
    model = MattingRefine("mobilenetv2", refine_sample_pixels=16 * 16).train()
    optimizer = T._build_optimizer(model, T.TrainConfig(stage="refine"))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    src, bgr, fgr, pha = fixed_batch(size=128)
    before = model.refiner.conv1.weight.detach().clone()
    loss, terms = T.training_step(model, optimizer, scaler, src, bgr, pha, fgr, stage="refine")
    assert set(terms) >= {"alpha_l1", "alpha_l1_sm", "error_mse"}
    assert torch.isfinite(loss)
    assert not torch.equal(before, model.refiner.conv1.weight)


def test_grad_scaler_path_gives_the_same_step_as_plain_fp32():
    """The AMP code path (scale, unscale, step, update) with a live scaler on CPU."""
    torch.manual_seed(0)
    src, bgr, fgr, pha = fixed_batch()
    first = MattingBase("mobilenetv2").train()
    second = MattingBase("mobilenetv2").train()
    second.load_state_dict(first.state_dict())
    start = {k: v.clone() for k, v in first.state_dict().items()}
    results = []
    for model, enabled in ((first, False), (second, True)):
        optimizer = T._build_optimizer(model, T.TrainConfig())
        scaler = torch.amp.GradScaler("cpu", enabled=enabled, init_scale=2.0**10)
        torch.manual_seed(1)  # same dropout mask
        T.training_step(model, optimizer, scaler, src, bgr, pha, fgr, clip_grad_norm=1.0)
        results.append(model.state_dict())
        if enabled:
            assert scaler.get_scale() == 2.0**10  # no overflow, the step was taken
    for name, value in results[0].items():
        torch.testing.assert_close(results[1][name], value, rtol=1e-5, atol=1e-7, msg=name)
    assert not torch.equal(results[0]["decoder.conv4.weight"], start["decoder.conv4.weight"])


def test_official_parameter_groups_and_lr_scale():
    model = MattingRefine("mobilenetv2")
    optimizer = T._build_optimizer(model, T.TrainConfig(stage="refine", lr_scale=2.0))
    rates = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert rates == {"backbone": 1e-4, "aspp": 1e-4, "decoder": 2e-4, "refiner": 6e-4}
    counted = sum(len(g["params"]) for g in optimizer.param_groups)
    assert counted == len(list(model.parameters()))


def test_refine_sample_pixels_follow_the_crop():
    config = T.TrainConfig(stage="refine", size=512)
    pixels = T.refine_sample_pixels(config)
    assert pixels % 16 == 0
    assert abs(pixels / 512**2 - REFINE_SHARE) < 0.001
    assert T.refine_sample_pixels(T.TrainConfig(stage="refine", size=64)) == 16 * 16


def test_recalibrate_batchnorm_measures_the_current_weights():
    torch.manual_seed(0)
    model = MattingBase("mobilenetv2")
    first_bn = model.backbone.features[0][1]
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean += 100.0  # stale statistics
    src, bgr, _, _ = fixed_batch()
    assert T.recalibrate_batchnorm(model.eval(), [(src, bgr), (bgr, src)]) == 2
    assert not model.training and first_bn.momentum == 0.1  # both restored
    with torch.no_grad():
        conv = model.backbone.features[0][0]
        means = [conv(torch.cat(pair, 1)).mean(dim=(0, 2, 3)) for pair in ((src, bgr), (bgr, src))]
    torch.testing.assert_close(
        first_bn.running_mean, (means[0] + means[1]) / 2, atol=1e-5, rtol=1e-4
    )
    assert int(first_bn.num_batches_tracked) == 2


def test_per_process_batch_splits_or_says_why_not():
    assert T.per_process_batch(8, 1) == 8 and T.per_process_batch(12, 4) == 3
    with pytest.raises(ValueError, match="divisible by the number of processes"):
        T.per_process_batch(8, 3)
    with pytest.raises(ValueError, match="batch of at least 2"):
        T.per_process_batch(4, 4)


def test_auto_device_follows_pick_device_and_mattingkit_device(monkeypatch):
    """``--device auto`` is runtime.pick_device: MATTINGKIT_DEVICE wins, even over a GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "a test GPU")
    monkeypatch.delenv("MATTINGKIT_DEVICE", raising=False)
    assert T._training_device("auto", T._Dist(1, 2, 1)) == torch.device("cuda", 1)
    assert T._training_device("cuda", T._Dist(0, 2, 3)) == torch.device("cuda", 1)
    monkeypatch.setenv("MATTINGKIT_DEVICE", "cpu")
    assert T._training_device("auto", T._Dist()) == torch.device("cpu")
    assert T._training_device("cuda:0", T._Dist()) == torch.device("cuda", 0)  # explicit wins


def test_live_loss_plot_records_and_draws():
    plot = LiveLossPlot(title="base")
    for step in (1, 2, 3):
        plot({"step": step, "loss": 1.0 / step, "val": None})
    plot({"step": 3, "loss": None, "val": {"sad": 2.5}})
    assert plot.steps == [1, 2, 3] and plot.losses == [1.0, 0.5, 1.0 / 3]
    assert plot.val_steps == [3] and plot.val_sad == [2.5]
    figure = plot.figure()
    assert len(figure.axes) == 2 and figure.axes[0].get_title() == "base"
    assert list(figure.axes[0].lines[0].get_ydata()) == plot.losses


# ------------------------------------------------------------------------------------------------
# Data order and init
# ------------------------------------------------------------------------------------------------


def test_resumable_batches_continue_the_same_sequence():
    data = SyntheticMattingDataset(10, (16, 16))
    full = list(T._ResumableBatches(data, 3, T._Dist(), seed=5, start=0, total=9))
    tail = list(T._ResumableBatches(data, 3, T._Dist(), seed=5, start=4, total=9))
    assert len(full) == 9 and tail == full[4:]
    assert [i for _, i in full[0]] != [i for _, i in full[3]]  # reshuffled every epoch
    ranks = [list(T._ResumableBatches(data, 2, T._Dist(r, 2), 5, 0, 2)) for r in (0, 1)]
    assert not set(sum(ranks[0], [])) & set(sum(ranks[1], []))  # ranks see disjoint samples
    assert [epoch for epoch, _ in full[3]] == [1, 1, 1]


def test_multiscale_refine_run_draws_the_base_input_size_per_step(tmp_path, monkeypatch):
    """--backbone-scale-max: each step's base input side is drawn from the step's seed (so a
    resumed run draws the same), every allowed side is used, and the saved model is at
    --backbone-scale again."""
    config = tiny_config(
        tmp_path, stage="refine", size=128, steps=8, backbone_scale=0.25, backbone_scale_max=0.5
    )
    assert T.base_sides(config) == [32, 64, 96, 128][:2]  # 128 * 0.25 ... 128 * 0.5, by 32 px
    assert T.base_sides(dataclasses.replace(config, backbone_scale_max=0.0)) == [32]
    real_step = T.training_step

    def runs(out: str) -> list[float]:
        seen = []

        def recording_step(model, *args, **kwargs):
            seen.append(model.backbone_scale)
            return real_step(model, *args, **kwargs)

        monkeypatch.setattr(T, "training_step", recording_step)
        result = T.train(dataclasses.replace(config, out=str(tmp_path / out)))
        monkeypatch.setattr(T, "training_step", real_step)
        weights = _load_weights(Path(result.config.out) / "model.pth")
        assert weights  # the run finished and saved
        return seen

    first = runs("a")
    assert sorted(set(first)) == [0.25, 0.5]
    assert runs("b") == first  # seeded per step: the same draw every time


def test_recalibration_batches_of_a_multiscale_run_visit_every_base_size():
    config = T.TrainConfig(stage="refine", size=256, backbone_scale=0.25, backbone_scale_max=0.5)
    model = MattingRefine("mobilenetv2", backbone_scale=0.25)
    seen = []
    for _ in T.at_training_scales(model, range(5), config):
        seen.append(model.backbone_scale * config.size)
    assert seen == [64, 96, 128, 64, 96]  # base_sides(config), in turn
    assert model.backbone_scale == 0.25  # set back afterwards
    # A model with BatchNorm statistics re-measured that way still runs at every size.
    T.recalibrate_batchnorm(
        model, T.at_training_scales(model, [(torch.rand(2, 3, 256, 256),) * 2] * 3, config)
    )
    assert model.backbone_scale == 0.25


def test_backbone_scale_max_needs_the_refine_stage_and_a_larger_scale():
    with pytest.raises(ValueError, match="--backbone-scale-max needs --stage refine"):
        T.TrainConfig(stage="base", backbone_scale_max=0.5).validate()
    with pytest.raises(ValueError, match="--backbone-scale-max"):
        T.TrainConfig(
            stage="refine", size=256, backbone_scale=0.25, backbone_scale_max=0.2
        ).validate()
    with pytest.raises(ValueError, match="--backbone-scale-max"):
        T.TrainConfig(
            stage="refine", size=256, backbone_scale=0.25, backbone_scale_max=0.75
        ).validate()


def test_refine_init_loads_the_base_weights(tmp_path):
    base = MattingBase("mobilenetv2")
    torch.save(base.state_dict(), tmp_path / "base.pth")
    refine = MattingRefine("mobilenetv2")
    note = C.load_initial_weights(refine, tmp_path / "base.pth")
    assert "refiner" in note
    torch.testing.assert_close(refine.backbone.state_dict(), base.backbone.state_dict())
    torch.testing.assert_close(refine.decoder.state_dict(), base.decoder.state_dict())
    torch.save(MattingBase("resnet50").state_dict(), tmp_path / "r50.pth")
    with pytest.raises(ValueError, match="does not fit"):
        C.load_initial_weights(MattingRefine("mobilenetv2"), tmp_path / "r50.pth")


# ------------------------------------------------------------------------------------------------
# Checkpoints, export
# ------------------------------------------------------------------------------------------------


def test_train_writes_checkpoints_weights_and_history(tmp_path):
    events = []
    result = T.train(tiny_config(tmp_path, augment=False), callbacks=[events.append])
    out = Path(result.config.out)
    assert result.steps == 4
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step-0000002.pth",
        "step-0000004.pth",
    ]
    checkpoint = T.load_checkpoint(out / "checkpoints" / "step-0000004.pth")
    assert checkpoint["step"] == 4 and checkpoint["config"]["size"] == 64
    assert set(checkpoint) >= {"model", "optimizer", "scheduler", "scaler", "rng", "history"}
    weights = _load_weights(out / "model.pth")
    MattingBase("mobilenetv2").load_state_dict(weights)
    assert [e["step"] for e in events if e.get("loss") is not None] == [1, 2, 3, 4]
    assert result.validation[-1]["step"] == 4 and result.validation[-1]["sad"] > 0
    assert (out / "history.json").is_file()


def test_trains_on_a_real_data_layout(tmp_path):
    """PhotoMatte85-style RGBA PNGs + a backgrounds folder, through mattingkit.data.datasets."""
    import cv2
    import numpy as np

    fg, bg = tmp_path / "PhotoMatte85", tmp_path / "Backgrounds"
    fg.mkdir()
    bg.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        rgba = rng.integers(0, 255, (90, 70, 4), dtype=np.uint8)
        rgba[..., 3] = 0
        rgba[20:70, 15:55, 3] = 255  # a subject in the middle
        cv2.imwrite(str(fg / f"{i}.png"), rgba)
        cv2.imwrite(str(bg / f"{i}.jpg"), rng.integers(0, 255, (80, 100, 3), dtype=np.uint8))
    config = tiny_config(
        tmp_path, data=f"photomatte85:{fg}", backgrounds=str(bg), steps=3, checkpoint_every=0
    )
    result = T.train(config)
    assert result.steps == 3 and result.history[-1]["loss"] > 0
    assert T._training_dataset(config)[0]["fgr"].shape == (3, 64, 64)


def test_checkpoint_is_atomic_when_the_save_crashes(tmp_path, monkeypatch):
    real_save = torch.save
    calls = {"n": 0}

    def crashing_save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint dies half-way through writing
            f.write(b"partial checkpoint bytes")
            raise RuntimeError("simulated crash during save")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(T.torch, "save", crashing_save)
    with pytest.raises(RuntimeError, match="simulated crash"):
        T.train(tiny_config(tmp_path, augment=False))
    folder = tmp_path / "run" / "checkpoints"
    assert [p.name for p in folder.iterdir()] == ["step-0000002.pth"]  # no partial, no temp
    assert T.load_checkpoint(folder / "step-0000002.pth")["step"] == 2


def test_refuses_to_overwrite_a_run_without_resume(tmp_path):
    T.train(tiny_config(tmp_path, steps=2, augment=False))
    with pytest.raises(FileExistsError, match="--resume"):
        T.train(tiny_config(tmp_path, steps=2, augment=False))


def test_export_weights_fp16(tmp_path):
    model = MattingRefine("mobilenetv2")
    path = T.export_weights(model, tmp_path / "w.pth")
    state = _load_weights(path)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    fresh = MattingRefine("mobilenetv2")
    fresh.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    torch.testing.assert_close(
        fresh.refiner.conv1.weight, model.refiner.conv1.weight, atol=1e-3, rtol=1e-3
    )
    assert path.stat().st_size < 0.6 * sum(v.numel() * 4 for v in model.state_dict().values())
    with pytest.raises(FileExistsError):
        T.export_weights(model, path)


def test_evaluate_scores_an_oracle_zero_and_a_blank_model_worse():
    samples = T.validation_samples(2, 64)
    lookup = {s["src"].data_ptr(): s["pha"] for s in samples}

    def oracle(src, bgr):
        return (lookup[src.data_ptr()][None],)

    def blank(src, bgr):
        return (torch.zeros_like(src[:, :1]),)

    perfect = T.evaluate(oracle, samples, device="cpu")
    bad = T.evaluate(blank, samples, device="cpu")
    assert perfect == {"sad": 0.0, "mse": 0.0, "grad": 0.0}
    assert bad["sad"] > 0.5 and bad["mse"] > 0.01


# ------------------------------------------------------------------------------------------------
# Command line: kill and resume, DDP, bad options
# ------------------------------------------------------------------------------------------------


STEPS = 40  # enough steps after the first checkpoint to kill the run in the middle, even under load
RUN_ARGS = ["--steps", str(STEPS), "--batch-size", "2", "--size", "64", "--checkpoint-every", "4",
            "--val-every", "0", "--val-samples", "1", "--threads", "1", "--no-progress", "--seed", "3",
            "--keep-checkpoints", "10"]  # fmt: skip


def test_kill_and_resume_matches_an_uninterrupted_run(tmp_path):
    straight = tmp_path / "straight"
    killed = tmp_path / "killed"
    subprocess.run(
        _cli(*RUN_ARGS, "--out", str(straight)), check=True, env=_env(), capture_output=True
    )

    process = subprocess.Popen(
        _cli(*RUN_ARGS, "--out", str(killed)),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # No time limit: on a loaded machine the import alone takes minutes.
    while not list((killed / "checkpoints").glob("step-*.pth")):
        assert process.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "model.pth").exists()  # really interrupted
    interrupted_at = T.load_checkpoint(T.latest_checkpoint(killed))["step"]
    assert interrupted_at < STEPS

    subprocess.run(
        _cli(*RUN_ARGS, "--out", str(killed), "--resume"),
        check=True,
        env=_env(),
        capture_output=True,
    )
    for folder in (straight, killed):
        files = sorted((folder / "checkpoints").glob("*"))
        assert [p.name for p in files][-1] == f"step-{STEPS:07d}.pth"
        assert all(T.load_checkpoint(p)["step"] % 4 == 0 for p in files)  # none corrupted
    assert T.load_checkpoint(T.latest_checkpoint(killed))["step"] == STEPS
    a, b = _load_weights(straight / "model.pth"), _load_weights(killed / "model.pth")
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed weights differ from the uninterrupted run: {different[:5]}"


def test_ddp_two_processes_end_with_identical_parameters(tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "mattingkit.training.loop", "--steps", "3", "--batch-size", "4", "--size", "64",
        "--val-samples", "1", "--no-progress", "--param-checksum", "--out", str(out),
        "--checkpoint-every", "2", "--val-every", "2",
    ]  # fmt: skip
    # A session of its own, so that a hung run is killed with all its worker processes.
    process = subprocess.Popen(
        command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:  # no time limit (a loaded machine is slow); an interrupted test kills the workers
        stdout, stderr = process.communicate()
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    assert process.returncode == 0, stderr[-3000:]
    sums = [(out / f"params-rank{r}.sha256").read_text().strip() for r in (0, 1)]
    assert len(sums[0]) == 64 and sums[0] == sums[1]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step-0000002.pth",
        "step-0000003.pth",
    ]
    checkpoint = T.load_checkpoint(out / "checkpoints" / "step-0000003.pth")
    model = MattingBase("mobilenetv2")
    model.load_state_dict(checkpoint["model"])
    assert C.param_checksum(model) == sums[0]
    assert stdout.count("done:") == 1  # only rank 0 reports
    history = json.loads((out / "history.json").read_text())
    assert [v["step"] for v in history["validation"]] == [2, 3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stage", "middle"], "--stage must be one of base, refine"),
        (["--size", "30"], "--size must be a multiple of 4"),
        (["--backbone", "vgg"], "--backbone must be one of"),
        (["--data", "somewhere"], "--data must be 'synthetic'"),
        (["--data", "photomatte85:/x"], "needs --backgrounds"),
        (["--lr-scale", "0"], "--lr-scale must be positive"),
        (["--init", "/nonexistent/base.pth"], "no such file"),
        (["--steps", "ten"], "invalid int value"),
    ],
)
def test_cli_rejects_bad_options(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        T.main([*args, "--out", "/nonexistent/never-written"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_a_batch_of_one_per_process(tmp_path, capsys):
    code = T.main(["--batch-size", "1", "--out", str(tmp_path / "r"), "--no-progress"])
    assert code == 2
    assert "batch of at least 2" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------------
# Command line: resuming says what it does
# ------------------------------------------------------------------------------------------------
TINY_ARGS = ["--batch-size", "2", "--size", "64", "--checkpoint-every", "2", "--val-every", "0",
             "--val-samples", "1", "--threads", "1", "--no-progress", "--no-augment",
             "--bn-recalibration", "1", "--schedule", "cosine"]  # fmt: skip


def _files_and_times(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


def test_resuming_a_finished_run_does_nothing_and_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert T.main([*TINY_ARGS, "--steps", "4", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("done: 4 steps in ")
    before = _files_and_times(out)
    assert T.main([*TINY_ARGS, "--steps", "4", "--out", str(out), "--resume"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("already complete at step 4 of 4; nothing to do")
    assert _files_and_times(out) == before  # history, weights and checkpoints left as they were
    (out / "model.pth").unlink()  # stopped between its last checkpoint and the weights file
    assert T.main([*TINY_ARGS, "--steps", "4", "--out", str(out), "--resume"]) == 0
    assert (out / "model.pth").is_file()


def test_a_resumed_run_reports_only_the_steps_it_ran(tmp_path, capsys):
    out = tmp_path / "run"
    assert T.main([*TINY_ARGS, "--steps", "6", "--out", str(out), "--checkpoint-every", "2"]) == 0
    (out / "checkpoints" / "step-0000006.pth").unlink()  # as if killed after step 4
    (out / "model.pth").unlink()
    capsys.readouterr()
    assert T.main([*TINY_ARGS, "--steps", "6", "--out", str(out), "--resume"]) == 0
    assert (
        capsys.readouterr().out.strip().splitlines()[-1].startswith("done: steps 5-6 (2 steps) in ")
    )


def test_a_different_total_on_resume_is_refused_without_extend(tmp_path, capsys):
    out = tmp_path / "run"
    assert T.main([*TINY_ARGS, "--steps", "4", "--out", str(out)]) == 0
    before = _files_and_times(out)
    capsys.readouterr()
    assert T.main([*TINY_ARGS, "--steps", "8", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m mattingkit.train: error: cannot resume")
    assert "planned for --steps 4" in err[0] and "add --extend" in err[0]
    assert _files_and_times(out) == before
    assert T.main([*TINY_ARGS, "--steps", "3", "--out", str(out), "--resume", "--extend"]) == 2
    assert "already at step 4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        T.main([*TINY_ARGS, "--steps", "8", "--out", str(out), "--extend"])  # needs --resume
    assert "add --resume" in capsys.readouterr().err


def test_extend_recomputes_the_schedule_for_the_new_total_and_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert T.main([*TINY_ARGS, "--steps", "4", "--out", str(out)]) == 0
    capsys.readouterr()
    config = T.TrainConfig(stage="base", steps=8, batch_size=2, size=64, out=str(out),
                           val_every=0, val_samples=1, checkpoint_every=2, threads=1,
                           progress=False, augment=False, bn_recalibration=1, schedule="cosine",
                           resume=True, extend=True)  # fmt: skip
    base = T.OFFICIAL_LEARNING_RATES["base"]["backbone"]
    planned_lr = base * T._lr_factor(dataclasses.replace(config, steps=4))(4)
    replanned_lr = base * T._lr_factor(config)(4)
    assert replanned_lr > 2 * planned_lr  # the cosine of 4 of 8 steps, not the end of 4
    run = T._start_or_resume(config, T._setup_distributed("cpu"), [])
    # The 5th step already runs at the new schedule's rate, in every parameter group.
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(replanned_lr)
    assert [g["lr"] for g in run.optimizer.param_groups] == pytest.approx(
        [b * T._lr_factor(config)(4) for b in run.scheduler.base_lrs]
    )
    assert T.main([*TINY_ARGS, "--steps", "8", "--out", str(out), "--resume", "--extend"]) == 0
    printed = capsys.readouterr().out
    assert (
        f"--extend: planned for 4 steps, now 8; the cosine learning-rate schedule is recomputed "
        f"for 8 steps: at step 4 the backbone's rate goes from {planned_lr:.3g} to "
        f"{replanned_lr:.3g}" in printed
    )
    assert printed.strip().splitlines()[-1].startswith("done: steps 5-8 (4 steps) in ")
    assert T.load_checkpoint(T.latest_checkpoint(out))["config"]["steps"] == 8


def test_help_says_each_default_once():
    text = " ".join(T._parser().format_help().split())
    assert "(default: the HD share, 3.9%)" in text and "0.0385" not in text
    assert text.count("(default:") == len(dataclasses.fields(T.TrainConfig))
    assert "--progress, --no-progress show a tqdm progress bar (default: on)" in text
    assert "the refine stage needs at least 32 / --backbone-scale (128" in text
