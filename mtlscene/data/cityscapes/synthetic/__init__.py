"""Procedural street scenes written in the exact CityScapes on-disk layout and encodings.

The generator stands in for CityScapes where the real data is not available (tests, smoke
runs, a demonstration that the three tasks help each other). One geometry ties the tasks
together the way real streets do: a pinhole stereo camera ``h = 1.22 m`` above a flat ground
plane, pitched down by a small angle. Every pixel is ray-cast into the scene:

* the ground plane (road in the middle, sidewalks, terrain strips) whose disparity falls
  linearly towards the horizon, ``d = fx * B / Z`` with ``1/Z = (cos(p) * (v - v0) / fy +
  sin(p)) / h`` for pitch ``p`` (pixel centres at integer coordinates);
* vertical planes along the street (building facades with window grids, hedges, fences,
  walls, a back row of trees) and across its far end;
* sky wherever no surface is hit (disparity invalid, PNG value 0);
* upright billboards at a constant camera depth ``Z`` standing on the ground (cars, trucks,
  buses, trams, persons, riders on bicycles or motorcycles, trees, poles, signs, traffic
  lights, bins) with metric sizes, so their image size grows with disparity, drawn far to
  near with a depth test so occlusion is real;
* sometimes the ego vehicle's hood at the bottom (labelId 1, disparity invalid).

Files (``{city}_{seq:06d}_000019_*``, frame 19 like CityScapes' annotated frames):
``leftImg8bit`` (RGB), ``gtFine`` ``_labelIds`` (8-bit), ``_instanceIds`` (16-bit,
``labelId * 1000 + k`` for individual objects, the plain labelId for stuff and for groups of
persons), ``_color`` (RGBA, official palette), ``disparity`` (16-bit, ``p = d * 256 + 1``,
0 invalid) and ``camera`` JSON whose intrinsics are the CityScapes ones scaled to the
generated resolution, so disparities are in pixels of that resolution. Optionally
(``disparity_noise``) the disparity carries stereo-like noise of known per-pixel std, written
to ``disparity_std/`` (`mtlscene.data.cityscapes.synthetic.disparity_noise`).

One concept per module: ``camera`` (the stereo rig), ``texture`` (palettes), ``painters``
(object shapes), ``layout`` (street, planes and objects of a scene), ``renderer`` (ray
casting into image, labels and depth) and ``writer`` (the files). The disparity PNG encoding
lives in `mtlscene.data.cityscapes.encoding`, beside its decoding; the value noise and the
per-scene random streams in `mtlscene.data.procedural`, and the completeness marker in
`mtlscene.data.synthetic_files`, both shared with the indoor generator.
"""

from mtlscene.data.cityscapes.encoding import encode_disparity
from mtlscene.data.cityscapes.synthetic.disparity_noise import DisparityNoise
from mtlscene.data.cityscapes.synthetic.renderer import SyntheticScene, generate_scene
from mtlscene.data.cityscapes.synthetic.writer import (
    DATA_TYPES,
    DEFAULT_SPLITS,
    GENERATOR_VERSION,
    MARKER_NAME,
    ensure_dataset,
    generate_dataset,
    is_complete,
    save_png,
    write_scene,
)

__all__ = [
    "DATA_TYPES",
    "DEFAULT_SPLITS",
    "DisparityNoise",
    "GENERATOR_VERSION",
    "MARKER_NAME",
    "SyntheticScene",
    "encode_disparity",
    "ensure_dataset",
    "generate_dataset",
    "generate_scene",
    "is_complete",
    "save_png",
    "write_scene",
]
