"""Render a room into the four NYUv2 targets: image, labels, metric depth and normals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtlscene.data.nyuv2.synthetic.camera import IndoorCamera
from mtlscene.data.nyuv2.synthetic.furnish import sample_room
from mtlscene.data.nyuv2.synthetic.raycast import FIRST_BOX, Hits, cast
from mtlscene.data.nyuv2.synthetic.room import (
    CEILING,
    CEILING_SURFACE,
    FLOOR,
    FLOOR_SURFACE,
    WALL,
    Room,
)
from mtlscene.data.nyuv2.synthetic.sensor import kinect_holes, unlabelled_boundaries
from mtlscene.data.procedural import Noise


@dataclass
class IndoorScene:
    """One generated frame in the arrays its files are written from.

    Attributes:
        image: float32 HxWx3 RGB in [0, 1].
        label: int16 HxW, NYUv2 classes 0..12, -1 unlabelled.
        depth: float32 HxW camera z in metres, 0 where invalid.
        normal: float32 HxWx3 unit normals in the camera frame (x right, y down, z forward),
            facing the camera; all-zero where the depth is invalid.
        camera: the camera the frame was rendered with.
    """

    image: np.ndarray
    label: np.ndarray
    depth: np.ndarray
    normal: np.ndarray
    camera: IndoorCamera


def sample_camera(rng: np.random.Generator, room: Room, height: int, width: int) -> IndoorCamera:
    """A hand-held camera pose: in free floor space, 1-1.7 m high, tilted down as people
    hold a Kinect, and facing into the room (at least 1.8 m to the wall ahead, so frames
    are rarely one blank wall)."""
    room_width, room_height, room_depth = room.size
    camera = None
    for _ in range(50):
        x = float(rng.uniform(0.4, room_width - 0.4))
        z = float(rng.uniform(0.4, room_depth - 0.4))
        if not room.footprint_free(x, z, 0.35):
            continue
        towards_centre = float(np.arctan2(room_width / 2 - x, room_depth / 2 - z))
        camera = IndoorCamera.looking(
            height,
            width,
            (x, float(rng.uniform(1.0, min(1.7, room_height - 0.3))), z),
            yaw=towards_centre + float(rng.uniform(-0.9, 0.9)),
            pitch=float(rng.uniform(-0.5, 0.05)),
            roll=float(rng.uniform(-0.05, 0.05)),
        )
        if _distance_ahead(room, camera) >= 1.8:
            break
    if camera is None:  # no free spot found: the middle of the room, looking along z
        camera = IndoorCamera.looking(
            height, width, (room_width / 2, 1.3, 0.3), yaw=0.0, pitch=-0.2
        )
    return camera


def _distance_ahead(room: Room, camera: IndoorCamera) -> float:
    """Distance along the optical axis to the room's walls, floor or ceiling."""
    forward = camera.rotation[:, 2]
    size, origin = np.asarray(room.size), camera.position
    with np.errstate(divide="ignore"):
        exits = np.where(forward > 0, (size - origin) / forward, -origin / forward)
    return float(np.min(np.where(np.abs(forward) < 1e-9, np.inf, exits)))


def render(room: Room, camera: IndoorCamera, rng: np.random.Generator | None = None) -> IndoorScene:
    """Ray-cast ``room`` from ``camera``. With ``rng``, the sensor's defects are added
    (depth holes, unlabelled boundaries) and textures vary; without, the output is exact."""
    hits = _flat(cast(room, camera))
    shape = (camera.height, camera.width)
    label, colour, valid = _materials(room, hits)
    light = -_unit(np.asarray(room.light))
    lambert = sum(hits.normal[:, a] * light[a] for a in range(3))
    shade = room.ambient + (1 - room.ambient) * np.clip(lambert, 0, None)
    texture = _texture(room, hits, np.random.default_rng(0) if rng is None else rng)
    # A ceiling light: surfaces far from the camera get a little darker.
    falloff = 1.0 / (1.0 + 0.015 * hits.depth**2)
    image = np.clip(colour * (shade * texture * (0.75 + 0.25 * falloff))[:, None], 0, 1)
    depth = np.where(valid, hits.depth, 0.0)
    if rng is not None:
        valid &= ~kinect_holes(rng, shape).ravel()
        depth = np.where(valid, depth, 0.0)
        image = np.clip(image + rng.normal(0, 0.01, image.shape), 0, 1)
    normal = camera.to_camera(hits.normal) * valid[:, None]
    label = label.reshape(shape)
    if rng is not None:
        label = unlabelled_boundaries(label)
    return IndoorScene(
        image=image.reshape(*shape, 3).astype(np.float32),
        label=label.astype(np.int16),
        depth=depth.reshape(shape).astype(np.float32),
        normal=normal.reshape(*shape, 3).astype(np.float32),
        camera=camera,
    )


def generate_indoor_scene(rng: np.random.Generator, height: int, width: int) -> IndoorScene:
    """A random furnished room seen from a random pose, with sensor defects."""
    room = sample_room(rng)
    return render(room, sample_camera(rng, room, height, width), rng)


def _flat(hits: Hits) -> Hits:
    return Hits(
        depth=hits.depth.ravel(),
        surface=hits.surface.ravel(),
        axis=hits.axis.ravel(),
        normal=hits.normal.reshape(-1, 3),
        point=hits.point.reshape(-1, 3),
    )


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def _materials(room: Room, hits: Hits) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per ray: class, base colour and whether a Kinect measures depth there."""
    n = hits.depth.size
    label = np.full(n, WALL, np.int16)
    colour = np.empty((n, 3))
    colour[:] = room.wall_colour
    valid = np.ones(n, bool)
    for surface, cls, base in (
        (FLOOR_SURFACE, FLOOR, room.floor_colour),
        (CEILING_SURFACE, CEILING, room.ceiling_colour),
    ):
        mask = hits.surface == surface
        label[mask], colour[mask] = cls, base
    for k, box in enumerate(room.boxes):
        mask = hits.surface == FIRST_BOX + k
        label[mask], colour[mask] = box.label, box.colour
    for decal in room.decals:
        along = hits.point[:, 2] if decal.wall in (2, 3) else hits.point[:, 0]
        up = hits.point[:, 1]
        mask = (hits.surface == decal.wall) & (along >= decal.u[0]) & (along <= decal.u[1])
        mask &= (up >= decal.v[0]) & (up <= decal.v[1])
        label[mask], colour[mask] = decal.label, decal.colour
        valid[mask] = decal.depth_valid
    return label, colour, valid


def _texture(room: Room, hits: Hits, rng: np.random.Generator) -> np.ndarray:
    """A brightness factor per ray: value noise in the hit face's own plane, wood grain,
    fabric weave or book spines."""
    noise = Noise(rng)
    p = hits.point
    # The two world coordinates spanning the hit face.
    u = np.where(hits.axis == 0, p[:, 2], p[:, 0])
    v = np.where(hits.axis == 1, p[:, 2], p[:, 1])
    factor = 1 + 0.06 * noise.fbm(u / 0.4, v / 0.4)
    floor = hits.surface == FLOOR_SURFACE
    planks = noise.cell(np.floor(p[floor, 0] / 0.18), np.floor(p[floor, 2] / 1.2 + p[floor, 0]))
    factor[floor] *= 1 + 0.1 * planks - 0.15 * (np.mod(p[floor, 0], 0.18) < 0.01)
    for k, box in enumerate(room.boxes):
        mask = hits.surface == FIRST_BOX + k
        if not mask.any() or box.pattern == "plain":
            continue
        if box.pattern == "wood":
            factor[mask] *= 1 + 0.12 * noise(u[mask] / 0.05, v[mask] / 0.6)
        elif box.pattern == "fabric":
            factor[mask] *= 1 + 0.15 * noise.fbm(u[mask] / 0.1, v[mask] / 0.1)
        else:  # books: one brightness per spine along the shelf
            along = p[mask, 0] if box.pattern == "books_x" else p[mask, 2]
            factor[mask] *= 1.1 + 0.6 * noise.cell(np.floor(along / 0.04), np.full(along.shape, k))
    return factor
