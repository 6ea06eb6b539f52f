"""The residual tracer's training loop: its noise law reaches the noise predictor."""
import torch

from tracer.models.residual import ResidualTracer
from tracer.separation.train import TracerTraining, train_residual_tracer


def _trained(noise_floor):
    torch.manual_seed(0)
    tracer = ResidualTracer(4, 1, 8, width=4, depth=3, gain=20.0, seed=0)
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    spec = TracerTraining(epochs=1, batch_size=16, noise_scale=0.05, clean_fraction=0.0,
                          noise_floor=noise_floor)
    history = train_residual_tracer(tracer, x, spec, seed=3, progress=False)
    return tracer, history


def test_a_noise_floor_changes_what_the_noise_predictor_is_trained_on():
    uniform, h_uniform = _trained(None)
    floored, h_floored = _trained(0.002)
    again, h_again = _trained(0.002)
    assert [r["epoch"] for r in h_floored] == [1] and h_floored == h_again   # seeded
    # the same images, initialisation and batches: only the noise levels differ. Uniform in
    # [0, 0.05] has mean square 8.3e-4, log-uniform from 0.002 3.9e-4: less noise to predict
    assert h_floored[0]["noise_mse"] < h_uniform[0]["noise_mse"]
    assert any(not torch.equal(a, b) for a, b in zip(uniform.state_dict().values(),
                                                     floored.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(floored.state_dict().values(),
                                                 again.state_dict().values()))
