"""Speed and AP of CentroidVoteClustering against sklearn OPTICS on the same centroid votes.

Synthetic scenes (occluding ellipses of four thing classes on road) give perfect centroid
vectors; Gaussian noise of each ``--noise`` sigma (px, per axis) is added to them, and both
methods cluster exactly the same noisy votes, grouped per predicted class. AP is CityScapes'
instance AP from ``InstanceAveragePrecision``.

Example:
    python benchmarks/bench_clustering.py --images 8 --height 128 --width 256 --noise 1 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch
from sklearn.cluster import OPTICS

from mtlscene.data.cityscapes.labels import INSTANCE_TRAIN_IDS, label_id, label_id_lut
from mtlscene.metrics.instance_ap import InstanceAveragePrecision
from mtlscene.postprocess import CentroidVoteClustering

_CLASSES = ("car", "person", "rider", "bicycle")
# Semi-axes ranges (rows, cols) in px at 128x256.
_SIZES = {"car": ((4, 14), (8, 28)), "person": ((5, 16), (2, 6)), "rider": ((5, 12), (2, 6))}
_SIZES["bicycle"] = ((3, 8), (4, 10))


def make_scenes(
    images: int, height: int, width: int, instances: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random scenes: CityScapes instanceIds, trainIds and perfect (dy, dx) centroid vectors."""
    rng = np.random.default_rng(seed)
    scale = height / 128
    ids = np.full((images, height, width), label_id("road"), dtype=np.int64)
    ys, xs = np.mgrid[0:height, 0:width]
    for b in range(images):
        for k in range(instances):
            name = _CLASSES[rng.integers(len(_CLASSES))]
            (h0, h1), (w0, w1) = _SIZES[name]
            ry, rx = rng.uniform(h0, h1) * scale, rng.uniform(w0, w1) * scale
            cy, cx = rng.uniform(0.3 * height, height - ry), rng.uniform(0, width)
            inside = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1
            ids[b][inside] = label_id(name) * 1000 + k + 1  # later ones occlude earlier ones
    ids_t = torch.from_numpy(ids)
    lut = torch.from_numpy(label_id_lut("trainid").astype(np.int64))
    semantic = lut[torch.where(ids_t >= 1000, ids_t // 1000, ids_t)]
    offsets = torch.zeros(images, 2, height, width)
    yy, xx = torch.from_numpy(ys).float(), torch.from_numpy(xs).float()
    for b in range(images):
        for value in ids_t[b].unique():
            member = ids_t[b] == value
            if value >= 1000:
                offsets[b, 0][member] = yy[member].mean() - yy[member]
                offsets[b, 1][member] = xx[member].mean() - xx[member]
    return ids_t, semantic, offsets


def cluster_optics(
    semantic: torch.Tensor,
    offsets: torch.Tensor,
    thing_train_ids: Sequence[int] = INSTANCE_TRAIN_IDS,
    min_pixels: int = 10,
    concentration_radius: float = 3.5,
    **optics_kwargs,
) -> list[dict[str, torch.Tensor]]:
    """The paper's clustering: sklearn OPTICS on the votes of each image and class.

    Args:
        semantic: predicted trainIds BxHxW.
        offsets: predicted (dy, dx) Bx2xHxW.
        thing_train_ids: classes whose pixels vote.
        min_pixels: smaller clusters are dropped.
        concentration_radius: the score is the fraction of a cluster's votes within this
            distance of its median vote (the same score as CentroidVoteClustering's).
        **optics_kwargs: passed to ``sklearn.cluster.OPTICS``.

    Returns:
        Dicts with ``masks``, ``labels``, ``scores``, ``instance_map`` like the vote clustering.
    """
    outputs = []
    for sem, off in zip(semantic.cpu(), offsets.cpu(), strict=True):
        height, width = sem.shape
        instance_map = torch.zeros(height, width, dtype=torch.long)
        labels, scores = [], []
        for cls in thing_train_ids:
            ys, xs = (sem == cls).nonzero(as_tuple=True)
            if ys.numel() < max(min_pixels, optics_kwargs.get("min_samples", 5)):
                continue
            votes = torch.stack((ys + off[0, ys, xs], xs + off[1, ys, xs]), dim=1).numpy()
            cluster = OPTICS(**optics_kwargs).fit(votes).labels_
            for c in range(cluster.max() + 1):
                member = cluster == c
                if member.sum() < min_pixels:
                    continue
                spread = np.linalg.norm(votes[member] - np.median(votes[member], axis=0), axis=1)
                scores.append(float((spread <= concentration_radius).mean()))
                labels.append(cls)
                instance_map[ys[member], xs[member]] = len(labels)
        order = torch.tensor(np.argsort(-np.asarray(scores), kind="stable"), dtype=torch.long)
        ids = torch.arange(1, len(labels) + 1)
        outputs.append(
            {
                "masks": (instance_map.unsqueeze(0) == ids[:, None, None])[order],
                "labels": torch.tensor(labels, dtype=torch.long)[order],
                "scores": torch.tensor(scores, dtype=torch.float)[order],
                "instance_map": instance_map,
            }
        )
    return outputs


def timed(fn: Callable[..., list], *args, device: torch.device) -> tuple[list, float]:
    """Result and wall time (s) of ``fn(*args)``, waiting for the GPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = fn(*args)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, time.perf_counter() - start


def evaluate(predictions: list[dict], ids: torch.Tensor, min_region: int) -> tuple[float, float]:
    metric = InstanceAveragePrecision(min_region_pixels=min_region)
    metric.update([{k: v.cpu() for k, v in p.items()} for p in predictions], ids)
    result = metric.compute()
    return float(result["ap"]), float(result["ap50"])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8, help="synthetic scenes (default 8)")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--instances", type=int, default=12, help="objects drawn per scene")
    parser.add_argument("--noise", type=float, nargs="+", default=[1.0, 3.0], help="sigma, px")
    parser.add_argument("--runs", type=int, default=20, help="timed runs of the vote clustering")
    parser.add_argument("--optics-images", type=int, default=None, help="default: all images")
    parser.add_argument("--optics-min-samples", type=int, default=5)
    parser.add_argument("--optics-max-eps", type=float, default=10.0)
    parser.add_argument(
        "--optics-method",
        choices=["dbscan", "xi"],
        default="dbscan",
        help="OPTICS cluster extraction (xi gave far lower AP on these blobs)",
    )
    parser.add_argument("--optics-eps", type=float, default=3.0, help="for --optics-method dbscan")
    parser.add_argument("--optics-xi", type=float, default=0.05, help="for --optics-method xi")
    parser.add_argument("--min-region", type=int, default=10, help="AP min GT size, px")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (vote clustering only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: like single-threaded OPTICS)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    optics_kwargs = {
        "min_samples": args.optics_min_samples,
        "max_eps": args.optics_max_eps,
        "cluster_method": args.optics_method,
    }
    optics_kwargs.update(
        {"eps": args.optics_eps} if args.optics_method == "dbscan" else {"xi": args.optics_xi}
    )

    device = torch.device(args.device)
    ids, semantic, perfect = make_scenes(
        args.images, args.height, args.width, args.instances, args.seed
    )
    gen = torch.Generator().manual_seed(args.seed + 1)
    noise = torch.randn(perfect.shape, generator=gen)
    cluster = CentroidVoteClustering().to(device)
    n_optics = args.optics_images or args.images
    things = (semantic >= 11) & (semantic <= 18)
    print(
        f"{args.images} scenes {args.height}x{args.width}, {args.instances} objects drawn each, "
        f"{int(things.sum()) / args.images:.0f} thing px/image; device {device}; "
        f"{torch.get_num_threads()} CPU thread(s); OPTICS on {n_optics} of them {optics_kwargs}"
    )
    header = f"{'sigma':>5}  {'method':<22} {'ms/image':>10} {'AP':>6} {'AP50':>6} {'speed-up':>9}"
    print(header + "\n" + "-" * len(header))
    for sigma in args.noise:
        offsets = perfect + sigma * noise
        sem_d, off_d = semantic.to(device), offsets.to(device)
        for _ in range(3):  # warm-up (allocator, kernels)
            cluster(sem_d, off_d)
        single, batched = [], []
        for _ in range(args.runs):
            for b in range(args.images):
                _, seconds = timed(cluster, sem_d[b : b + 1], off_d[b : b + 1], device=device)
                single.append(seconds)
            vote_pred, seconds = timed(cluster, sem_d, off_d, device=device)
            batched.append(seconds / args.images)
        optics_pred, optics_times = [], []
        for b in range(n_optics):
            pred, seconds = timed(
                partial(cluster_optics, **optics_kwargs),
                semantic[b : b + 1],
                offsets[b : b + 1],
                device=torch.device("cpu"),
            )
            optics_pred += pred
            optics_times.append(seconds)
        optics_s = statistics.median(optics_times)
        rows = [
            ("vote (batch 1)", statistics.median(single), vote_pred[:n_optics]),
            (f"vote (batch {args.images})", statistics.median(batched), vote_pred[:n_optics]),
            ("sklearn OPTICS", optics_s, optics_pred),
        ]
        for name, seconds, pred in rows:
            ap, ap50 = evaluate(pred, ids[:n_optics], args.min_region)
            print(
                f"{sigma:>5.1f}  {name:<22} {1000 * seconds:>10.2f} {ap:>6.3f} {ap50:>6.3f} "
                f"{optics_s / seconds:>8.0f}x"
            )
        if n_optics < args.images:
            ap, ap50 = evaluate(vote_pred, ids, args.min_region)
            print(f"{sigma:>5.1f}  {'vote, all images':<22} {'':>10} {ap:>6.3f} {ap50:>6.3f}")


if __name__ == "__main__":
    main()
