"""The default configuration's headline figures, reproduced by a real run (make test-full only).

About 12 minutes on 2 CPU cores: fashion_mnist, the small CNN, 5 copies, alpha 0.15, the default
attacks (200 examples each) and the full calibrate stage. The figures are the README's: C >=
89%, every copy within 0.25 pp of it, HopSkipJump traced >= 97.5% and detected >= 95% at the
calibrated threshold, Boundary traced >= 98%, every innocent set <= 1% held out, and no attack's
evidence, white-box PGD's included, names a wrong buyer more than 1% of the time (issue 16).
"""
import json

import pytest

import tracer


@pytest.mark.slow
def test_default_configuration_reproduces_the_headline_figures(tmp_path):
    run = tracer.run(tracer.compose("progress=false"), tmp_path / "run")
    m = json.loads(run.metrics_path.read_text())
    assert m["base_clean_acc"] >= 0.89
    assert all(abs(a - m["base_clean_acc"]) <= 0.0025 for a in m["copy_clean_acc"])
    hsja, boundary = m["attacks"]["hsja"], m["attacks"]["boundary"]
    assert hsja["num_evidence"] >= 200 and boundary["num_evidence"] >= 200
    assert hsja["trace_acc"] >= 0.975 and hsja["detection_rate"] >= 0.95
    assert boundary["trace_acc"] >= 0.98
    assert m["innocent"]["independent_hsja_short"]["num"] >= 400
    for name, inn in m["innocent"].items():
        assert inn["false_accusation_rate"] <= 0.01, name
    for name, a in m["attacks"].items():
        assert a["wrong_accusation_rate"] <= 0.01, name
