import json

import pytest

from tracer.evaluation.collect import (num_copies_rows, find_metrics, main, main_columns,
                                       metric_rows, pivot, pivot_columns, summarise, to_csv,
                                       to_latex, to_markdown)
from tracer.evaluation.paper_figures import paper_clean_acc, paper_trace_acc


def _write_run(path, seed, trace_acc, dataset="cifar10", alpha=0.15, method="residual", **extra):
    path.mkdir(parents=True)
    attack = {"success_rate": 1.0, "transfer_rate": 0.1, "trace_acc": trace_acc,
              "trace_acc_transferable": None, "trace_acc_nontransferable": 1.0, "ks_d": 0.8,
              "trace_acc_by_num_copies": {"2": trace_acc, "5": trace_acc - 0.1},
              "trace_acc_mc_by_num_copies": {"2": 0.99, "5": 0.8}}
    (path / "metrics.json").write_text(json.dumps({
        "dataset": dataset, "model": "resnet18", "method": method, "num_copies": 5,
        "alpha": alpha, "seed": seed, "base_clean_acc": 0.9, "copy_clean_acc": [0.89, 0.9],
        "attacks": {"hsja": attack}, **extra}))


def test_seeds_of_one_cell_are_averaged_and_the_paper_figure_is_beside_them(tmp_path):
    _write_run(tmp_path / "sweep" / "0", 0, 0.9)
    _write_run(tmp_path / "sweep" / "1", 1, 1.0)
    _write_run(tmp_path / "other", 0, 0.5, alpha=0.1)
    rows = summarise([r for p in find_metrics([tmp_path]) for r in metric_rows(p)])
    assert len(rows) == 2
    cell = next(r for r in rows if r["alpha"] == 0.15)
    assert cell["seeds"] == 2 and cell["trace_acc"] == pytest.approx((0.95, 0.05))
    assert cell["trace_acc_transferable"] is None
    assert cell["paper_trace_acc"] == 97.5 == paper_trace_acc("cifar10", "resnet18", "hsja", 0.15, 5)
    md = to_markdown(main_columns(), rows)
    assert "| 95.0 ± 5.0 | - | 100.0 | 0.80 | - | - | - | 94.1 | 97.5 |" in md
    assert "0.95" in to_csv(main_columns(), rows).splitlines()[2]
    assert r"\pm" in to_latex(main_columns(), rows)


def test_a_variant_of_a_method_is_named_apart_from_its_own_keys(tmp_path):
    cases = {("residual", "projection", "shared"): "residual",
             ("residual", "permutation", "shared"): "residual/permutation",
             ("paper", "permutation", "shared"): "paper",
             ("residual", "projection", "orthogonal"): "residual/orthogonal",
             ("residual", "permutation", "orthogonal"): "residual/permutation/orthogonal"}
    for i, ((method, keying, classifiers), label) in enumerate(cases.items()):
        _write_run(tmp_path / str(i), 0, 0.9, method=method, keying=keying,
                   classifiers=classifiers)
        assert metric_rows(tmp_path / str(i) / "metrics.json")[0]["method"] == label


def test_methods_side_by_side_put_a_baseline_in_every_alpha_row(tmp_path):
    _write_run(tmp_path / "a", 0, 0.9, alpha=0.05)
    _write_run(tmp_path / "b", 0, 1.0, alpha=0.15)
    _write_run(tmp_path / "c", 0, 0.3, alpha=None, method="naive")
    rows = [r for p in find_metrics([tmp_path]) for r in metric_rows(p)]
    table = pivot(summarise(rows))
    assert [(r["alpha"], r["residual"][0], r["naive"][0]) for r in table] == \
        [(0.05, 0.9, 0.3), (0.15, 1.0, 0.3)]
    assert table[1]["paper_trace_acc"] == 97.5
    assert [c[0] for c in pivot_columns(table)][-3:] == ["naive trace_acc %",
                                                         "residual trace_acc %", "paper trace %"]
    copies = num_copies_rows(rows)
    assert [(r["alpha"], r["n"], r["exact"][0], r["monte_carlo"][0]) for r in copies
            if r["method"] == "residual"] == [(0.05, 2, 0.9, 0.99), (0.05, 5, 0.8, 0.8),
                                              (0.15, 2, 1.0, 0.99), (0.15, 5, 0.9, 0.8)]


def test_paper_has_no_figure_for_other_copies_or_data():
    assert paper_trace_acc("cifar10", "resnet18", "hsja", 0.15, 10) is None
    assert paper_trace_acc("fashion_mnist", "small_cnn", "hsja", 0.15, 5) is None
    assert paper_trace_acc("cifar10", "resnet18", "hsja", None, 5) is None


def test_paper_theta_ablation_and_clean_accuracy():
    assert paper_trace_acc("cifar10", "resnet18", "qeba", 0.15, 5, theta_deg=30.0) == 80.0
    assert paper_trace_acc("cifar10", "resnet18", "qeba", 0.15, 5, theta_deg=75.0) == 98.0
    assert paper_trace_acc("cifar10", "resnet18", "hsja", 0.15, 5, theta_deg=30.0) is None
    assert paper_clean_acc("gtsrb", "vgg16", 0.0) == 97.59
    assert paper_clean_acc("gtsrb", "vgg16", 0.1) is None


def test_cli_writes_three_formats_and_refuses_bad_input(tmp_path, capsys):
    _write_run(tmp_path / "run", 0, 0.9)
    main([str(tmp_path / "run"), "--out", str(tmp_path / "tables")])
    assert "| cifar10 |" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "tables").iterdir()} == {
        f"{name}.{ext}" for name in ("tables", "by_method", "copies")
        for ext in ("md", "csv", "tex")} | {"trace_acc_vs_n.png"}   # one run: 2 and 5 copies
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.json").write_text('{"dataset": "x"}')
    for arg in (tmp_path / "bad", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        with pytest.raises(SystemExit) as e:
            main([str(arg)])
        assert e.value.code == 2
    assert "not a tracer metrics.json" in capsys.readouterr().err
