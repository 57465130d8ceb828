import pytest
import torch

from mtlscene.tasks import (
    DepthHead,
    InstanceHead,
    Likelihood,
    SemanticHead,
    TaskHead,
    available_tasks,
    get_task,
    masked_l1,
    register_task,
)


def test_builtin_tasks_are_registered_with_the_papers_likelihoods():
    assert {"semantic", "instance", "depth"} <= set(available_tasks())
    assert get_task("semantic") is SemanticHead
    assert SemanticHead(16).likelihood is Likelihood.BOLTZMANN
    assert InstanceHead(16).likelihood is Likelihood.GAUSSIAN
    assert DepthHead(16, likelihood="laplace").likelihood is Likelihood.LAPLACE


def test_unknown_task_lists_the_known_ones():
    known = "depth, instance, metric_depth, normal, semantic"
    with pytest.raises(KeyError, match=f"unknown task 'normals'.*{known}"):
        get_task("normals")


def test_register_task_rejects_non_heads_and_name_clashes():
    with pytest.raises(TypeError):
        register_task("thing")(object)

    with pytest.raises(ValueError, match="already registered"):

        @register_task("semantic")
        class Other(DepthHead):
            pass


def test_heads_decode_to_input_size_with_their_channels():
    features = torch.randn(2, 16, 4, 8)
    assert SemanticHead(16)(features, (32, 64)).shape == (2, 19, 32, 64)
    assert SemanticHead(16, label_set="category")(features, (32, 64)).shape == (2, 7, 32, 64)
    assert InstanceHead(16)(features, (32, 64)).shape == (2, 2, 32, 64)
    assert DepthHead(16)(features, (32, 64)).shape == (2, 1, 32, 64)


def test_masked_l1_is_the_l1_norm_over_masked_pixels():
    prediction = torch.zeros(1, 2, 1, 3)
    target = torch.tensor([[[[1.0, 2.0, 5.0]], [[-1.0, 0.0, 5.0]]]])
    mask = torch.tensor([[[True, True, False]]])
    # pixel 0: |1| + |-1| = 2, pixel 1: 2 + 0 = 2, pixel 2 ignored
    assert float(masked_l1(prediction, target, mask)) == pytest.approx(2.0)
    assert float(masked_l1(prediction, target, torch.zeros_like(mask))) == 0.0


def test_semantic_loss_ignores_void_and_survives_all_void_batches():
    head = SemanticHead(4)
    logits = torch.randn(1, 19, 2, 2, requires_grad=True)
    all_void = {"semantic": torch.full((1, 2, 2), 255)}
    loss = head.loss(logits, all_void)
    assert float(loss) == 0.0
    loss.backward()
    assert logits.grad is not None


def test_missing_batch_keys_name_the_task():
    with pytest.raises(KeyError, match="task 'depth' needs batch keys"):
        DepthHead(4).check_batch({"image": 1}, "depth")


def test_task_head_is_abstract():
    with pytest.raises(TypeError):
        TaskHead(4)  # type: ignore[abstract]
