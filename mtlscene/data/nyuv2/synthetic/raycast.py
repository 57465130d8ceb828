"""Vectorised ray casting of a room: the first surface each pixel's ray hits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtlscene.data.nyuv2.synthetic.camera import IndoorCamera
from mtlscene.data.nyuv2.synthetic.room import (
    CEILING_SURFACE,
    FLOOR_SURFACE,
    WALL_SURFACES,
    Box,
    Room,
)

FIRST_BOX = 6
"""Surface number of ``room.boxes[0]``; 0..5 are the floor, ceiling and walls."""


@dataclass
class Hits:
    """Per pixel (HxW arrays): what its ray hit and where.

    Attributes:
        depth: camera z of the hit point (metres).
        surface: 0 floor, 1 ceiling, 2..5 walls (see ``room.WALL_SURFACES``), 6 + k box k.
        axis: world axis (0 x, 1 y, 2 z) the hit face is perpendicular to.
        normal: unit world normal of the hit face, towards the camera (HxWx3).
        point: world hit point (HxWx3).
    """

    depth: np.ndarray
    surface: np.ndarray
    axis: np.ndarray
    normal: np.ndarray
    point: np.ndarray


def cast(room: Room, camera: IndoorCamera) -> Hits:
    """Cast every pixel's ray from a camera inside the room.

    The room is a box seen from inside: a ray leaves it through the face whose exit
    distance is smallest. Furniture boxes are seen from outside (slab test): the entry
    distance is the largest of the per-axis near distances, tested only over the image
    rectangle the box projects into. Rays have camera z = 1, so the distance along them is
    the depth. Per-component arrays keep numpy on fast element-wise loops.
    """
    origin = camera.position
    directions = camera.ray_directions().reshape(camera.height, camera.width, 3)
    # Axis-parallel rays would divide by zero; a tiny offset changes no hit.
    safe = [np.where(np.abs(d) < 1e-12, 1e-12, d) for d in np.moveaxis(directions, -1, 0)]
    inverse = [1.0 / d for d in safe]
    exits = [
        np.maximum(-origin[a] * inverse[a], (room.size[a] - origin[a]) * inverse[a])
        for a in range(3)
    ]
    depth = np.minimum(np.minimum(exits[0], exits[1]), exits[2])
    axis = np.where(exits[0] == depth, 0, np.where(exits[1] == depth, 1, 2)).astype(np.int8)
    surface = np.empty(depth.shape, np.int16)
    floor_or_ceiling = np.where(safe[1] > 0, CEILING_SURFACE, FLOOR_SURFACE)
    surface[...] = np.where(axis == 1, floor_or_ceiling, 0)
    for (wall_axis, side), number in WALL_SURFACES.items():
        surface[(axis == wall_axis) & ((safe[wall_axis] > 0) == bool(side))] = number

    for k, box in enumerate(room.boxes):
        rows, cols = _footprint(box, camera)
        if rows.start >= rows.stop or cols.start >= cols.stop:
            continue
        window = (rows, cols)
        near_axes = []
        far = None
        for a in range(3):
            t1 = (box.lo[a] - origin[a]) * inverse[a][window]
            t2 = (box.hi[a] - origin[a]) * inverse[a][window]
            near_axes.append(np.minimum(t1, t2))
            far_a = np.maximum(t1, t2)
            far = far_a if far is None else np.minimum(far, far_a)
        near = np.maximum(np.maximum(near_axes[0], near_axes[1]), near_axes[2])
        hit = (near <= far) & (near > 1e-6) & (near < depth[window])
        if hit.any():
            depth[window][hit] = near[hit]
            hit_axis = np.where(near_axes[0] == near, 0, np.where(near_axes[1] == near, 1, 2))
            axis[window][hit] = hit_axis[hit]
            surface[window][hit] = FIRST_BOX + k

    normal = np.zeros(directions.shape)
    for a in range(3):
        # The hit face faces the camera: its normal opposes the ray along the face's axis.
        normal[..., a] = np.where(axis == a, -np.sign(safe[a]), 0.0)
    point = origin + depth[..., None] * directions
    return Hits(depth=depth, surface=surface, axis=axis, normal=normal, point=point)


def _footprint(box: Box, camera: IndoorCamera) -> tuple[slice, slice]:
    """Rows and columns of the image a box can cover (all of it when the box reaches
    behind the camera, where projection fails)."""
    corners = np.array(
        [
            (x, y, z)
            for x in (box.lo[0], box.hi[0])
            for y in (box.lo[1], box.hi[1])
            for z in (box.lo[2], box.hi[2])
        ]
    )
    local = (corners - camera.position) @ camera.rotation
    if (local[:, 2] < 1e-3).any():
        return slice(0, camera.height), slice(0, camera.width)
    cols = camera.fx * local[:, 0] / local[:, 2] + camera.width / 2 - 0.5
    rows = camera.fy * local[:, 1] / local[:, 2] + camera.height / 2 - 0.5
    r0, r1 = max(int(np.floor(rows.min())) - 1, 0), min(int(np.ceil(rows.max())) + 2, camera.height)
    c0, c1 = max(int(np.floor(cols.min())) - 1, 0), min(int(np.ceil(cols.max())) + 2, camera.width)
    return slice(r0, r1), slice(c0, c1)
