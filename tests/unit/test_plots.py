"""Every picture is a real PNG of the expected size, drawn from the data it is given."""
import pytest
import torch
from PIL import Image

from tracer.evaluation import plots


def _png(path):
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 200 and im.height > 150
        return im.convert("L")


def test_statistic_histogram_and_confusion(tmp_path):
    stat = torch.randn(20, 3)
    source = torch.arange(20) % 3
    _png(plots.statistic_histogram(stat, source, tmp_path / "h.png", title="t"))
    named = source.clone()
    named[0] = -1
    _png(plots.confusion_matrix(source, named, 3, tmp_path / "c.png"))


def test_adversarial_examples_magnify_the_perturbation(tmp_path):
    x = torch.full((2, 1, 8, 8), 0.5)
    x_adv = x.clone()
    x_adv[:, :, :4] += 0.01                   # a faint top half: must come out bright
    im = _png(plots.adversarial_examples(x, x_adv, tmp_path / "e.png", count=5))
    assert im.getextrema()[1] == 255
    with pytest.raises(ValueError, match="no adversarial"):
        plots.adversarial_examples(x[:0], x_adv[:0], tmp_path / "none.png")


def test_accuracy_curve_draws_one_line_per_series_and_refuses_empty_input(tmp_path):
    rows = [{"method": m, "attack": "hsja", "alpha": a, "trace_acc": (v, 0.01)}
            for m, a, v in (("residual", 0.05, 0.6), ("residual", 0.15, 0.95),
                            ("naive", None, 0.4))]
    _png(plots.accuracy_curve(rows, "alpha", tmp_path / "a.png"))
    with pytest.raises(ValueError, match="no rows"):
        plots.accuracy_curve(rows, "theta_deg", tmp_path / "t.png")
