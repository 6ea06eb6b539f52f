"""C from a config's _target_: the allow-list, the checks on kwargs, the adapted first conv."""
import pytest
import torch
from torch import nn

from tracer.config import compose, to_spec
from tracer.models import InputSpec, ModelSpec, build_base
from tracer.models.targets import ENV_VAR, adapt_input_channels, build_target, check_target

GREY = InputSpec([1, 28, 28], 10, [0.3], [0.3])

VENDOR_NET = '''
import torch
from torch import nn

class VendorNet(nn.Module):
    def __init__(self, num_classes, width=4):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))
'''


def test_a_torchvision_builder_is_built_with_the_data_sets_classes_and_channels():
    net = build_base(ModelSpec(arch=None, kwargs={}, target="torchvision.models.resnet18"), GREY)
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert net[1].conv1.in_channels == 1 and net[1].conv1.stride == (2, 2)   # its own stem


def test_vgg_pools_28_pixels_to_nothing_unless_resized():
    spec = dict(arch=None, kwargs={}, target="torchvision.models.vgg11")
    with pytest.raises(RuntimeError):
        build_base(ModelSpec(**spec), GREY)(torch.rand(1, 1, 28, 28))
    net = build_base(ModelSpec(**spec, resize=32), GREY).eval()
    assert net(torch.rand(1, 1, 28, 28)).shape == (1, 10)


@pytest.mark.parametrize("target", ["os.system", "torchvision.models.list_models",
                                    "torch.nn.Linear", "torchvision.models.resnet18.__globals__"])
def test_a_target_off_the_allow_list_is_refused_before_anything_is_imported(target):
    with pytest.raises(ValueError, match=f"not allowed.*{ENV_VAR}"):
        check_target(target, {})


@pytest.mark.parametrize("kwargs, match", [
    ({"num_classes": 3}, "num_classes"),
    ({"norm_layer": {"_target_": "os.system"}}, "_target_"),
    ({"_recursive_": False}, "_recursive_"),
    ({"weights": object()}, "plain JSON"),
])
def test_kwargs_that_are_not_plain_json_or_would_build_something_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_target("torchvision.models.resnet18", kwargs)


def test_a_vendors_own_module_is_built_once_the_investigator_allows_it(tmp_path, monkeypatch):
    (tmp_path / "vendor_nets.py").write_text(VENDOR_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = dict(arch=None, kwargs={"width": 6}, target="vendor_nets.VendorNet")
    with pytest.raises(ValueError, match="not allowed"):
        ModelSpec(**spec)
    monkeypatch.setenv(ENV_VAR, "torchvision.models.resnet18, vendor_nets.VendorNet")
    net = build_base(ModelSpec(**spec), GREY)
    assert net[1].conv.in_channels == 1 and net[1].conv.out_channels == 6
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    monkeypatch.setenv(ENV_VAR, "vendor_nets.NoSuchNet")
    with pytest.raises(ValueError, match="cannot be imported"):
        build_target("vendor_nets.NoSuchNet", {}, 10, 1)


def test_exactly_one_of_arch_and_target():
    with pytest.raises(ValueError, match="exactly one"):
        ModelSpec(arch="small_cnn", target="torchvision.models.resnet18")
    with pytest.raises(ValueError, match="exactly one"):
        ModelSpec(arch=None)


def test_the_first_conv_is_adapted_and_nothing_else():
    net = nn.Sequential(nn.Conv2d(3, 8, 5, stride=2, padding=2, bias=False), nn.ReLU(),
                        nn.Conv2d(8, 8, 3))
    second = net[2]
    adapt_input_channels(net, 1)
    first = net[0]
    assert (first.in_channels, first.out_channels, first.kernel_size, first.stride,
            first.padding, first.bias) == (1, 8, (5, 5), (2, 2), (2, 2), None)
    assert net[2] is second
    adapt_input_channels(net, 1)   # already fits: left as it is
    assert net[0] is first


def test_the_model_configs_compose_into_their_specs():
    spec = to_spec(compose("model=torchvision_resnet18")).separation.model
    assert (spec.arch, spec.target, spec.resize) == (None, "torchvision.models.resnet18", None)
    assert to_spec(compose("model=torchvision_vgg16")).separation.model.resize == 32
    with pytest.raises(ValueError, match="not allowed"):
        to_spec(compose("model=torchvision_resnet18", "model._target_=os.system"))
