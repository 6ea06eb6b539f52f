import torch

from tracer.tracing import dol_from_outputs, dol_score, verdict


def test_dol_is_tracer_difference_at_top1_and_top2_labels():
    outputs = torch.tensor([[[0.1, 0.7, 0.5], [0.9, 0.2, 0.3]]])       # [1 example, 2 copies, 3]
    tracer = torch.tensor([[[0.2, 0.9, -0.4], [-0.5, 0.0, 0.8]]])
    # copy 0: top1 = 1, top2 = 2 -> 0.9 - (-0.4); copy 1: top1 = 0, top2 = 2 -> -0.5 - 0.8
    assert torch.allclose(dol_from_outputs(outputs, tracer), torch.tensor([[1.3, -1.3]]))


def test_dol_score_matches_per_copy_computation(family):
    x = torch.rand(7, 1, 8, 8)
    scores, labels = dol_score(family, x, batch_size=3)
    for i in range(family.num_copies):
        copy = family.copy(i)
        out, t = copy(x), copy.tracer_outputs(x)
        top2 = out.topk(2, 1).indices
        expected = t.gather(1, top2[:, :1]) - t.gather(1, top2[:, 1:])
        assert torch.allclose(scores[:, i], expected.squeeze(1), atol=1e-6)
        assert torch.equal(labels[:, i], out.argmax(1))


def test_verdict_argmax_and_abstention():
    scores = torch.tensor([[0.1, 0.9, 0.3], [0.2, 0.1, 0.15]])
    index, abstained = verdict(scores)
    assert index.tolist() == [1, 0] and not abstained.any()
    index, abstained = verdict(scores, abstain_below=0.5)
    assert index.tolist() == [1, 0] and abstained.tolist() == [False, True]
