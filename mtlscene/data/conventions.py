"""Conventions every dataset shares: the ignored label value and the cache folder's name."""

from __future__ import annotations

IGNORE_INDEX = 255
"""Label of pixels no loss or metric counts (CityScapes' void, NYUv2's unlabelled, own data's)."""

DEFAULT_FOLDER = "mtlscene_cache"
"""The cache folder inside the dataset root unless ``cache_dir`` says otherwise."""
