"""Chapter 06 exercise checks: right answers pass, typical mistakes fail with a useful hint."""

from __future__ import annotations

from mattingkit.notebook import exercises as ex
from mattingkit.training.loop import OFFICIAL_LEARNING_RATES, TrainConfig, refine_sample_pixels


def test_learning_rates_check(capsys):
    def right(stage, scale):
        return {k: v * scale for k, v in OFFICIAL_LEARNING_RATES[stage].items()}

    def unscaled(stage, scale):
        return dict(OFFICIAL_LEARNING_RATES[stage])

    def base_rates_everywhere(stage, scale):
        return {k: v * scale for k, v in OFFICIAL_LEARNING_RATES["base"].items()}

    assert ex.check_learning_rates(right)
    assert not ex.check_learning_rates(unscaled)
    assert "lr_scale 3.0" in capsys.readouterr().out
    assert not ex.check_learning_rates(base_rates_everywhere)
    assert "refiner" in capsys.readouterr().out
    assert not ex.check_learning_rates(lambda stage, scale: None)


def test_refine_sample_pixels_check(capsys):
    def right(size, fraction):
        return refine_sample_pixels(
            TrainConfig(stage="refine", size=size, refine_sample_fraction=fraction)
        )

    def unrounded(size, fraction):
        return int(size * size * fraction)

    def no_minimum(size, fraction):
        return round(size * size * fraction / 16) * 16

    assert ex.check_refine_sample_pixels(right)
    assert not ex.check_refine_sample_pixels(unrounded)
    assert "4×4 patches" in capsys.readouterr().out
    assert not ex.check_refine_sample_pixels(no_minimum)
    assert "at least 16 patches" in capsys.readouterr().out


def test_per_process_batch_check(capsys):
    def right(batch, world):
        if batch % world or batch // world < 2:
            raise ValueError("cannot split")
        return batch // world

    assert ex.check_per_process_batch(right)
    assert not ex.check_per_process_batch(lambda batch, world: batch // world)
    assert "should raise ValueError" in capsys.readouterr().out
    assert not ex.check_per_process_batch(lambda batch, world: batch)
    assert not ex.check_per_process_batch(lambda batch, world: None)
