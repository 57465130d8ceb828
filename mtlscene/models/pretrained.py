"""ImageNet weights through torchvision's weights API, kept in torch's hub cache.

``weights: IMAGENET1K_V2`` in a backbone config names a member of torchvision's
``ResNet*_Weights`` enum. Its file lives where torchvision itself keeps it,
``torch.hub.get_dir()/checkpoints/<file name of the URL>`` (``$TORCH_HOME/hub/checkpoints``),
so a file downloaded once by torchvision, by mtlscene or by hand serves every later run,
offline included.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import torch
from torchvision.models import WeightsEnum, get_model_weights, get_weight

# torchvision file names end in the first digits of the file's SHA-256: "resnet101-cd907fc2.pth".
_HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")


def resolve_weights(name: str, weights: str | WeightsEnum) -> WeightsEnum:
    """The torchvision weights enum member for a ResNet and a weights name.

    Args:
        name: torchvision model name, e.g. "resnet101".
        weights: a member name of that model's enum ("IMAGENET1K_V2", "IMAGENET1K_V1",
            "DEFAULT"), its full name ("ResNet101_Weights.IMAGENET1K_V2") or the member.

    Raises:
        ValueError: the name is not one of the model's weights; the message lists them.
    """
    enum = get_model_weights(name)
    choices = [member.name for member in enum] + ["DEFAULT"]
    if isinstance(weights, WeightsEnum):
        member = weights
    else:
        try:
            member = get_weight(weights) if "." in weights else enum[weights]
        except (KeyError, ValueError):
            member = None
    if not isinstance(member, enum):
        raise ValueError(
            f"model.backbone weights {weights!r} are not ImageNet weights of {name}; "
            f"choose one of {choices} (torchvision {enum.__name__})"
        )
    return member


def cached_weights_file(weights: WeightsEnum) -> Path:
    """Where torchvision keeps the file of ``weights``: torch's hub cache."""
    file_name = Path(urlparse(weights.url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def fetch_weights_file(weights: WeightsEnum, download: bool = True) -> Path:
    """The local file of ``weights``, downloaded into torch's hub cache when missing.

    Args:
        weights: a torchvision weights enum member.
        download: fetch the file when it is not cached; False never touches the network.

    Raises:
        FileNotFoundError: the file is not cached and could not (or may not) be downloaded;
            the message names the exact path to place the file at and its URL.
    """
    path = cached_weights_file(weights)
    if path.is_file():
        return path
    fix = (
        f"download {weights.url} on a machine with network access and place it at {path} "
        "(that folder is $TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints), "
        "or set model.backbone.init_args.weights_path to a local copy"
    )
    if not download:
        raise FileNotFoundError(f"ImageNet weights {weights} are not cached at {path}: {fix}")
    match = _HASH_IN_NAME.search(path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Downloads into a temporary file and renames it when complete and verified, so
        # several processes (DDP ranks) may fetch at once without reading a partial file.
        torch.hub.download_url_to_file(
            weights.url, str(path), hash_prefix=match.group(1) if match else None
        )
    except Exception as error:  # noqa: BLE001 - urllib, ssl and hash errors differ in type
        raise FileNotFoundError(
            f"ImageNet weights {weights} are not cached at {path} and downloading them failed "
            f"({type(error).__name__}: {error}): {fix}"
        ) from error
    return path
