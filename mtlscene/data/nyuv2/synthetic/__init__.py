"""Procedural indoor scenes written as an NYUv2 root in the mtan layout.

Stands in for NYUv2 where the real files are not available (tests, the NYUv2 quick start).
Each frame is a room seen by a hand-held Kinect-like camera: planar walls, floor and
ceiling; furniture built of axis-aligned boxes (beds, sofas, tables with legs, chairs,
cabinets with books or objects on top, clutter on the floor); paintings, windows and
televisions as rectangles on the walls; value-noise textures lit by a directional light
and ambient light. Every pixel is ray-cast (vectorised numpy), so depth and normals are
exact, and the labels are the 13 NYUv2 classes.

Conventions of the written files (see `mtlscene.data.nyuv2.layout`):

* depth is the camera z of the hit point in metres (what a Kinect measures), 0 where the
  "sensor" gives none: on windows, on some TV screens and in 0-3 random elliptic holes;
* normals are unit vectors in the camera frame, OpenCV axes: x points to the right of the
  image (growing column), y down (growing row), z forward; they face the camera
  (``n . ray < 0``), so the floor seen level is about (0, -1, 0). A horizontal image flip
  mirrors x, hence negates the normal's x component. Where the depth is invalid the normal
  is all-zero;
* labels: the pixels on both sides of every class boundary are -1 (unlabelled, as in the
  hand annotation), and some clutter boxes are unlabelled altogether.

One concept per module: ``camera`` (pinhole pose and rays), ``room`` (what a scene is made
of), ``furnish`` (the random layout), ``raycast`` (first hits), ``sensor`` (depth holes,
unlabelled outlines), ``renderer`` (materials, texture, light) and ``writer`` (the files).
The value noise and per-scene random streams are `mtlscene.data.procedural`'s, the
completeness marker and lock `mtlscene.data.synthetic_files`', both shared with the
CityScapes generator.
"""

from mtlscene.data.nyuv2.synthetic.camera import IndoorCamera
from mtlscene.data.nyuv2.synthetic.furnish import sample_room
from mtlscene.data.nyuv2.synthetic.renderer import IndoorScene, generate_indoor_scene, render
from mtlscene.data.nyuv2.synthetic.room import Box, Decal, Room
from mtlscene.data.nyuv2.synthetic.writer import (
    DEFAULT_SPLITS,
    GENERATOR_VERSION,
    MARKER_NAME,
    ensure_dataset,
    generate_dataset,
    is_complete,
    write_scene,
)

__all__ = [
    "DEFAULT_SPLITS",
    "GENERATOR_VERSION",
    "MARKER_NAME",
    "Box",
    "Decal",
    "IndoorCamera",
    "IndoorScene",
    "Room",
    "ensure_dataset",
    "generate_dataset",
    "generate_indoor_scene",
    "is_complete",
    "render",
    "sample_room",
    "write_scene",
]
