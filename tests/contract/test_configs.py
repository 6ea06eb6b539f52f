"""Every config composes into typed specs; the config flows one way; _target_ is allow-listed."""
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tracer.config import CONFIG_DIR, build, check_targets, compose, resolve_device, to_spec

GROUPS = ("dataset", "model", "separation", "attack", "experiment", "profile", "cell")


def _options(group):
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_option_composes_into_specs(group, option):
    # cell is not in the defaults list: it is added (+cell=...) by a comparison sweep
    overrides = ["debug=tiny", f"{'+' if group == 'cell' else ''}{group}={option}"]
    cfg = compose(*overrides)
    spec = to_spec(cfg)
    assert spec.separation.num_copies >= 2
    for attack in spec.evidence.attacks:
        assert attack.threat in ("decision", "score", "whitebox") and callable(attack.factory)


def test_default_config_is_the_issue_default():
    spec = to_spec(compose())
    assert spec.data.name == "fashion_mnist" and spec.separation.num_copies == 5
    assert spec.separation.alpha == 0.15 and spec.evidence.num >= 200
    assert {a.name for a in spec.evidence.attacks} >= {"hsja", "boundary", "pgd"}


def test_the_default_config_is_the_dataclasses_defaults():
    """Defaults live in one place: the YAML says what the dataclasses say, node for node."""
    from dataclasses import replace

    from tracer.attacks.adaptive import AdaptiveSpec
    from tracer.config import DataSpec, PipelineSpec
    from tracer.innocent import InnocentSpec
    from tracer.separation import SeparationSpec
    spec = to_spec(compose())
    assert spec.separation == SeparationSpec()
    assert spec.evidence.adaptive == AdaptiveSpec()
    assert replace(spec.evidence, attacks=[]) == PipelineSpec().evidence
    assert replace(spec.innocent, attacks=[]) == InnocentSpec()
    assert replace(spec.data, root=None, cache_dir=None) == DataSpec()
    assert (spec.seed, spec.stage, spec.progress, spec.scorer) == (0, "all", True, "auto")
    assert [a.name for a in spec.innocent.attacks] == ["hsja_short", "pgd", "square"]


def test_a_mistyped_key_in_any_node_is_a_clear_error():
    for override in ("+dataset.n_tran=5", "+model.train.epoch=3", "+separation.alphaa=0.1",
                     "+evidence.nun=3", "+innocent.nums=4", "+attack.pgd.budgett=3",
                     "+separation.finetune.lrr=1"):
        with pytest.raises(ValueError, match="unknown .* option"):
            to_spec(compose("debug=tiny", override))


def test_the_full_profile_sweeps_the_papers_data_and_models():
    cfg = compose("experiment=table2_cpu", "profile=full", with_hydra=True)
    params = cfg.hydra.sweeper.params
    assert params["+cell"] and params.dataset == "cifar10,gtsrb" and params.model == "resnet18,vgg16"
    assert cfg.evidence.num == 1000 and cfg.device == "auto"
    cfg = compose("experiment=table2_cpu", "profile=full_imagenet", with_hydra=True)
    assert cfg.hydra.sweeper.params.model == "resnet50,vgg19" and cfg.evidence.num == 1000


def test_disallowed_target_is_refused():
    node = OmegaConf.create({"a": {"b": [{"_target_": "os.system", "_args_": ["true"]}]}})
    with pytest.raises(ValueError, match="os.system"):
        check_targets(node)
    with pytest.raises(ValueError):
        build(node)


def test_unknown_option_is_a_clear_error():
    cfg = compose("debug=tiny", "+separation.tracer.train.epocs=3")
    with pytest.raises(ValueError, match="epocs"):
        to_spec(cfg)


def test_devices_resolve():
    import torch
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda:0")


def test_only_config_and_pipeline_import_hydra():
    root = Path(__file__).resolve().parents[2] / "tracer"
    offenders = []
    for path in root.rglob("*.py"):
        if path.name in ("config.py", "pipeline.py"):
            continue
        if re.search(r"^\s*(import|from)\s+(hydra|omegaconf)\b", path.read_text(), re.M):
            offenders.append(str(path.relative_to(root)))
    assert offenders == []
