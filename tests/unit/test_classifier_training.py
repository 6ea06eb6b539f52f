"""C's training loop: the random attack-like perturbations it can be trained under."""
import pytest
import torch
from torch import nn

from tracer.separation.train import (ClassifierTraining, fgsm_random_start, random_perturbations,
                                     train_classifier)


def test_random_perturbations_perturb_the_share_asked_at_the_budget_by_each_law():
    g = torch.Generator().manual_seed(0)
    delta = random_perturbations((3000, 1, 8, 8), 0.5, 0.1, g)
    size = delta.abs().flatten(1).amax(1)
    on = size > 0
    assert 0.46 < on.float().mean() < 0.54
    assert torch.allclose(size[on], torch.full_like(size[on], 0.1))
    assert torch.equal(delta[on].abs(), torch.full_like(delta[on], 0.1))   # every pixel moved
    # each law shows in its shape: stripes are constant down a column, blocks over 2 x 2 cells
    # of an 8 x 8 image (a 4 x 4 grid), signs neither
    d = delta[on]
    stripes = (d == d[..., :1, :]).flatten(1).all(1)
    blocks = (d == d[..., ::2, ::2].repeat_interleave(2, -2)
              .repeat_interleave(2, -1)).flatten(1).all(1)
    signs = ~stripes & ~blocks
    for law in (stripes, blocks, signs):
        assert 0.28 < law.float().mean() < 0.39
    assert torch.equal(random_perturbations((5, 1, 8, 8), 0.0, 0.1, g), torch.zeros(5, 1, 8, 8))


def _trained(random_share, adversarial_share=0.0):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    x = torch.rand(48, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(48) % 3
    spec = ClassifierTraining(epochs=1, batch_size=16, random_share=random_share,
                              adversarial_share=adversarial_share)
    train_classifier(model, x, y, spec, seed=2, progress=False)
    return model.state_dict()


def test_c_trained_under_random_perturbations_sees_other_images_seeded():
    plain, perturbed, again = _trained(0.0), _trained(1.0), _trained(1.0)
    assert any(not torch.equal(plain[k], perturbed[k]) for k in plain)
    assert all(torch.equal(perturbed[k], again[k]) for k in plain)


def test_c_trained_on_adversarial_examples_sees_other_images_seeded():
    plain, adversarial, again = _trained(0.5), _trained(0.5, 0.5), _trained(0.5, 0.5)
    assert any(not torch.equal(plain[k], adversarial[k]) for k in plain)
    assert all(torch.equal(adversarial[k], again[k]) for k in plain)


def _linear_case(n: int, side: int, top: float):
    """A linear model whose class-0 weights rise from -1 to ``top`` along the flattened image
    (the loss gradient's sign is the same at every point, -sign(w) for class 0), n grey images
    of class 0 and uniform random starts."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(side * side, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([torch.linspace(-1, top, side * side),
                                           torch.zeros(side * side)]))
        model[1].bias.zero_()
    start = torch.rand(n, 1, side, side, generator=torch.Generator().manual_seed(0))
    return model, torch.full((n, 1, side, side), 0.5), torch.zeros(n, dtype=torch.long), start


def test_fgsm_random_start_steps_up_the_loss_within_the_ball():
    model, x, y, start = _linear_case(3, 4, 1.0)
    adv = fgsm_random_start(model.train(), x, y, 0.1, start)
    assert model.training   # its mode is given back
    assert (adv - x).abs().max() <= 0.1 + 1e-6
    # a step of 1.25 eps from any start within eps ends on the side of the gradient's sign
    w = model[1].weight[0].view(1, 4, 4)
    assert torch.equal((adv - x)[:, 0].sign(), -w.sign().expand(3, 4, 4))
    assert (nn.functional.cross_entropy(model(adv), y, reduction="none")
            > nn.functional.cross_entropy(model(x), y, reduction="none")).all()
    assert fgsm_random_start(model, torch.zeros(3, 1, 4, 4), y, 0.1, start).min() >= 0


def test_fgsm_on_a_grid_steps_by_the_sign_of_each_tiles_gradient():
    # a linear model on 6 x 6 images, tiles of 4: the last rows and columns are edge tiles cut
    # short; each tile's summed gradient has one sign, which the whole tile takes
    model, x, y, start = _linear_case(2, 6, 1.5)
    adv = fgsm_random_start(model, x, y, 0.1, start, grid=4)
    step = (adv - x)[:, 0]
    assert step.abs().max() <= 0.1 + 1e-6
    for rows, cols in ((slice(0, 4), slice(0, 4)), (slice(0, 4), slice(4, 6)),
                       (slice(4, 6), slice(0, 4)), (slice(4, 6), slice(4, 6))):
        tile = step[:, rows, cols]
        w = model[1].weight[0].view(6, 6)[rows, cols]
        assert torch.equal(tile.sign(), -w.sum().sign().expand_as(tile)), (rows, cols)
    assert torch.equal(fgsm_random_start(model, x, y, 0.1, start, grid=1),
                       fgsm_random_start(model, x, y, 0.1, start))
    with pytest.raises(ValueError, match="adversarial_grid must be"):
        train_classifier(nn.Linear(4, 2), torch.rand(4, 4), torch.zeros(4, dtype=torch.long),
                         ClassifierTraining(epochs=1, adversarial_grid=0), progress=False)


@pytest.mark.parametrize("share, epsilon", [(1.5, 0.1), (-0.1, 0.1), (0.5, -0.1)])
def test_bad_random_perturbation_settings_are_refused(share, epsilon):
    spec = ClassifierTraining(epochs=1, random_share=share, random_epsilon=epsilon)
    with pytest.raises(ValueError, match="random_share must be in"):
        train_classifier(nn.Linear(4, 2), torch.rand(4, 4), torch.zeros(4, dtype=torch.long),
                         spec, progress=False)


@pytest.mark.parametrize("random_share, share, epsilon", [(0.5, 0.6, 0.1), (0.0, -0.1, 0.1),
                                                          (0.0, 0.5, -0.1)])
def test_bad_adversarial_settings_are_refused(random_share, share, epsilon):
    spec = ClassifierTraining(epochs=1, random_share=random_share, adversarial_share=share,
                              adversarial_epsilon=epsilon)
    with pytest.raises(ValueError, match="adversarial_share must be in"):
        train_classifier(nn.Linear(4, 2), torch.rand(4, 4), torch.zeros(4, dtype=torch.long),
                         spec, progress=False)


class Recorder(nn.Module):
    """A linear classifier that keeps the images it sees in eval mode: FGSM's starting points."""

    def __init__(self):
        super().__init__()
        self.linear, self.seen = nn.Linear(64, 3), []

    def forward(self, x):
        if not self.training:
            self.seen.append(x.detach().clone())
        return self.linear(x.flatten(1))


def test_adversarial_rows_are_their_share_and_apart_from_the_random_ones():
    model = Recorder()
    x, y = torch.full((4000, 1, 8, 8), 0.5), torch.arange(4000) % 3
    spec = ClassifierTraining(epochs=1, batch_size=400, random_share=0.25, adversarial_share=0.25)
    train_classifier(model, x, y, spec, seed=0, progress=False)
    starts = torch.cat(model.seen)
    assert 0.23 < len(starts) / len(x) < 0.27
    # a random law moves every pixel by 0.1, and a start within the ball moves it up to 0.1 more:
    # FGSM starts from images the random laws left alone
    assert ((starts - 0.5).abs() <= 0.1 + 1e-6).all()
