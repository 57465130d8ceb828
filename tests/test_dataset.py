import numpy as np
import pytest
import torch
from handmade import BASELINE, FX, HEIGHT, STEM, WIDTH, write_frame

from mtlscene.data import CityscapesMultiTask
from mtlscene.data.cityscapes.encoding import decode_disparity, instance_offsets
from mtlscene.data.cityscapes.transforms import JointAugmentation


@pytest.fixture
def root(tmp_path):
    return write_frame(tmp_path / "cs")


def test_semantic_targets_map_void_and_ignored_classes_to_255(root):
    item = CityscapesMultiTask(root, "val", size=(HEIGHT, WIDTH))[0]
    semantic = item["semantic"]
    assert item["name"] == STEM
    assert semantic[0, 0] == 10  # sky
    assert semantic[5, 5] == 0  # road
    assert (semantic[2] == 255).all()  # unlabeled (void)
    assert (semantic[3, :2] == 255).all()  # parking: ignoreInEval
    assert semantic[5, 1] == 13 and semantic[4, 6] == 11  # car, person
    assert semantic[7, 9] == 11  # a person group is still "person" semantically


def test_categories_option_gives_seven_classes(root):
    semantic = CityscapesMultiTask(root, "val", (HEIGHT, WIDTH), label_set="category")[0][
        "semantic"
    ]
    assert semantic[5, 5] == 0  # flat
    assert semantic[0, 0] == 4  # sky
    assert semantic[5, 1] == 6  # vehicle
    assert semantic[2, 0] == 255  # void


def test_instance_targets_cover_only_individual_instances(root):
    item = CityscapesMultiTask(root, "val", (HEIGHT, WIDTH))[0]
    mask, offsets = item["instance_mask"], item["instance_offset"]
    assert mask.sum() == 16 + 4  # the car and the person, not the group
    assert not mask[7, 9]
    for region in (np.s_[4:8, 0:4], np.s_[4:6, 6:8]):
        vectors = offsets[:, region[0], region[1]].reshape(2, -1)
        # Vectors point at the centroid, so they average to zero over each instance.
        assert torch.allclose(vectors.mean(dim=1), torch.zeros(2), atol=1e-6)
    # Top-left car pixel (4, 0) points to the car centroid (5.5, 1.5).
    assert offsets[:, 4, 0].tolist() == pytest.approx([1.5, 1.5])
    assert (offsets[:, ~mask] == 0).all()


def test_disparity_decoding_p0_invalid_p1_zero(root):
    item = CityscapesMultiTask(root, "val", (HEIGHT, WIDTH))[0]
    assert not item["disparity_mask"][0, 0]  # p = 0
    assert item["disparity_mask"][7, 11] and item["disparity"][7, 11] == 0.0  # p = 1
    assert item["disparity"][5, 5] == pytest.approx(4.0)
    assert float(item["depth_scale"]) == pytest.approx(BASELINE * FX)


def test_resize_scales_disparity_and_offsets(root):
    item = CityscapesMultiTask(root, "val", (HEIGHT // 2, WIDTH // 2))[0]
    assert item["image"].shape == (3, HEIGHT // 2, WIDTH // 2)
    assert item["disparity"][2, 2] == pytest.approx(2.0)  # halving the size halves disparity
    assert float(item["depth_scale"]) == pytest.approx(BASELINE * FX / 2)
    # The car is 2x2 at half size: its top-left pixel is half a pixel from the centroid.
    assert item["instance_offset"][:, 2, 0].tolist() == pytest.approx([0.5, 0.5])


def test_flip_negates_dx_and_keeps_targets_aligned(root):
    plain = CityscapesMultiTask(root, "val", (HEIGHT, WIDTH))[0]
    flip = JointAugmentation((HEIGHT, WIDTH), scale_range=None, hflip_prob=1.0, color_jitter=0)
    flipped = CityscapesMultiTask(root, "val", (HEIGHT, WIDTH), augmentation=flip)[0]
    assert torch.equal(flipped["semantic"], plain["semantic"].flip(-1))
    assert torch.allclose(flipped["image"], plain["image"].flip(-1))
    assert torch.allclose(flipped["instance_offset"][1], -plain["instance_offset"][1].flip(-1))
    assert torch.allclose(flipped["instance_offset"][0], plain["instance_offset"][0].flip(-1))
    assert torch.equal(flipped["disparity"], plain["disparity"].flip(-1))


def test_scale_augmentation_rescales_disparity_and_offsets(root):
    double = JointAugmentation((2 * HEIGHT, 2 * WIDTH), (2.0, 2.0), hflip_prob=0, color_jitter=0)
    item = CityscapesMultiTask(root, "val", (HEIGHT, WIDTH), augmentation=double)[0]
    assert item["disparity"].shape == (2 * HEIGHT, 2 * WIDTH)
    assert item["disparity"][10, 10] == pytest.approx(8.0)
    # The car (now 8x8 from row 8, col 0) has its top-left pixel 3.5 px from the centroid.
    assert item["instance_offset"][:, 8, 0].tolist() == pytest.approx([3.5, 3.5])
    assert float(item["depth_scale"]) == pytest.approx(BASELINE * FX * 2)


def test_decode_disparity_and_offsets_units():
    d, valid = decode_disparity(np.array([[0, 1, 257, 65535]], dtype=np.uint16))
    assert valid.tolist() == [[False, True, True, True]]
    assert d[0].tolist() == pytest.approx([0.0, 0.0, 1.0, 65534 / 256])
    offsets, mask = instance_offsets(torch.tensor([[0, 26000, 26000, 26001]]))
    assert mask.tolist() == [[False, True, True, True]]
    assert offsets[1].tolist() == [[0.0, 0.5, -0.5, 0.0]]


def test_instance_offsets_match_per_instance_centroids_exactly():
    rng = np.random.default_rng(0)
    ids = rng.choice([0, 7, 24000, 24001, 26000, 33002, 2**40], size=(23, 37))
    offsets, mask = instance_offsets(torch.from_numpy(ids))
    expected = np.zeros((2, 23, 37), np.float32)
    for value in np.unique(ids[ids >= 1000]):
        ys, xs = np.nonzero(ids == value)
        coords = np.stack([ys, xs]).astype(np.float64)
        centroid = coords.sum(axis=1, keepdims=True) / ys.size
        expected[:, ys, xs] = (centroid - coords).astype(np.float32)
    assert np.array_equal(offsets.numpy(), expected)
    assert np.array_equal(mask.numpy(), ids >= 1000)
