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
generated resolution, so disparities are in pixels of that resolution.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from mtlscene.data.labels import label_id, label_id_palette

GENERATOR_VERSION = 1
"""Bumped whenever the generated content changes, so stale datasets are regenerated."""

MARKER_NAME = "SYNTHETIC.json"
DEFAULT_SPLITS: Mapping[str, int] = MappingProxyType({"train": 64, "val": 16, "test": 16})
DATA_TYPES = ("leftImg8bit", "gtFine", "disparity", "camera")

# CityScapes' calibration at 2048x1024 (a typical camera file) and the stereo rig.
FULL_SIZE = (1024, 2048)
FULL_INTRINSIC = {"fx": 2262.52, "fy": 2265.3017905988554, "u0": 1096.98, "v0": 513.137}
BASELINE = 0.209313
CAMERA_HEIGHT = 1.22
FRAME = 19

EGO, STATIC = label_id("ego vehicle"), label_id("static")
ROAD, SIDEWALK, TERRAIN = label_id("road"), label_id("sidewalk"), label_id("terrain")
BUILDING, WALL, FENCE = label_id("building"), label_id("wall"), label_id("fence")
POLE, LIGHT, SIGN = label_id("pole"), label_id("traffic light"), label_id("traffic sign")
VEGETATION, SKY = label_id("vegetation"), label_id("sky")
PERSON, RIDER, CAR = label_id("person"), label_id("rider"), label_id("car")
TRUCK, BUS, TRAIN = label_id("truck"), label_id("bus"), label_id("train")
MOTORCYCLE, BICYCLE = label_id("motorcycle"), label_id("bicycle")
MAX_DISPARITY = (65535 - 1) / 256

_CAR_COLOURS = np.array(
    [
        [0.85, 0.85, 0.85],
        [0.6, 0.62, 0.65],
        [0.08, 0.08, 0.09],
        [0.3, 0.3, 0.32],
        [0.6, 0.08, 0.07],
        [0.1, 0.2, 0.5],
        [0.07, 0.1, 0.25],
        [0.15, 0.3, 0.2],
        [0.7, 0.65, 0.5],
        [0.85, 0.7, 0.2],
    ],
    dtype=np.float32,
)
_BUILDING_COLOURS = np.array(
    [
        [0.72, 0.66, 0.55],
        [0.6, 0.6, 0.6],
        [0.55, 0.3, 0.22],
        [0.85, 0.83, 0.78],
        [0.8, 0.72, 0.5],
        [0.45, 0.42, 0.4],
        [0.62, 0.5, 0.42],
    ],
    dtype=np.float32,
)
_CLOTHES = np.array(
    [
        [0.1, 0.1, 0.12],
        [0.2, 0.22, 0.35],
        [0.5, 0.1, 0.1],
        [0.75, 0.75, 0.72],
        [0.35, 0.3, 0.25],
        [0.15, 0.3, 0.2],
        [0.6, 0.5, 0.2],
        [0.3, 0.3, 0.3],
    ],
    dtype=np.float32,
)
_VEHICLE_COLOURS = np.array(
    [[0.9, 0.9, 0.88], [0.85, 0.75, 0.1], [0.7, 0.1, 0.1], [0.2, 0.35, 0.6], [0.3, 0.5, 0.3]],
    dtype=np.float32,
)


@dataclass
class SyntheticScene:
    """One generated frame, in the arrays the files are written from.

    Attributes:
        image: uint8 HxWx3 RGB.
        label_ids: uint8 HxW official CityScapes labelIds.
        instance_ids: int32 HxW, ``labelId * 1000 + k`` for individual instances, else labelId.
        disparity: float32 HxW in pixels of this resolution, 0 where invalid.
        disparity_valid: bool HxW, False on sky and the ego vehicle.
        camera: the camera JSON content (CityScapes structure, intrinsics at this resolution).
    """

    image: np.ndarray
    label_ids: np.ndarray
    instance_ids: np.ndarray
    disparity: np.ndarray
    disparity_valid: np.ndarray
    camera: dict


@dataclass(frozen=True)
class _Camera:
    fx: float
    fy: float
    u0: float
    v0: float
    pitch: float
    height: float = CAMERA_HEIGHT
    baseline: float = BASELINE

    @classmethod
    def at_resolution(cls, height: int, width: int, pitch: float) -> _Camera:
        sy, sx = height / FULL_SIZE[0], width / FULL_SIZE[1]
        return cls(
            fx=FULL_INTRINSIC["fx"] * sx,
            fy=FULL_INTRINSIC["fy"] * sy,
            u0=FULL_INTRINSIC["u0"] * sx,
            v0=FULL_INTRINSIC["v0"] * sy,
            pitch=pitch,
        )

    def to_json(self) -> dict:
        return {
            "extrinsic": {
                "baseline": self.baseline,
                "pitch": self.pitch,
                "roll": 0.0,
                "x": 1.7,
                "y": 0.1,
                "yaw": 0.0,
                "z": self.height,
            },
            "intrinsic": {"fx": self.fx, "fy": self.fy, "u0": self.u0, "v0": self.v0},
        }

    def row_at(self, depth: float, above_ground: float) -> float:
        """Image row of a point ``above_ground`` metres high at camera depth ``depth``."""
        cos, sin = math.cos(self.pitch), math.sin(self.pitch)
        return self.v0 + self.fy * ((self.height - above_ground) / depth - sin) / cos


@dataclass
class _Plane:
    """A vertical rectangle along the street (side = -1/+1 at |X| = offset, extent in Z)
    or across it (side = 0 at Z = offset, extent in X)."""

    side: int
    offset: float
    start: float
    end: float
    top: float
    label: int
    kind: str
    colour: np.ndarray
    params: dict


@dataclass
class _Billboard:
    """An upright object at camera depth ``z`` spanning X in [x0, x1], heights [bottom, top]."""

    label: int
    x0: float
    x1: float
    z: float
    bottom: float
    top: float
    paint: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    individual: bool = False


@dataclass
class _Street:
    left: float  # road edges: road covers X in [-left, right]
    right: float
    lane_width: float
    lane_lines: list[float]
    sidewalk: tuple[float, float]  # widths (left, right)
    terrain: tuple[float, float]
    end: float  # Z of the far facade row (inf: the street runs to the horizon)
    crosswalk: float  # Z where a zebra crossing starts (inf: none)


def _jitter(rng: np.random.Generator, colour: np.ndarray, amount: float = 0.12) -> np.ndarray:
    return np.clip(colour * rng.uniform(1 - amount, 1 + amount, 3), 0, 1).astype(np.float32)


def _pick(rng: np.random.Generator, palette: np.ndarray, amount: float = 0.12) -> np.ndarray:
    return _jitter(rng, palette[rng.integers(len(palette))], amount)


class _Noise:
    """Smooth periodic value noise in [-1, 1] from one random lattice per image."""

    def __init__(self, rng: np.random.Generator, size: int = 64) -> None:
        self.table = rng.uniform(-1, 1, (size, size)).astype(np.float32)
        self.size = size

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        xf, yf = np.floor(x), np.floor(y)
        tx, ty = (x - xf).astype(np.float32), (y - yf).astype(np.float32)
        tx, ty = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
        ix, iy = xf.astype(np.int64) % self.size, yf.astype(np.int64) % self.size
        ix1, iy1 = (ix + 1) % self.size, (iy + 1) % self.size
        t = self.table
        top = t[iy, ix] + (t[iy, ix1] - t[iy, ix]) * tx
        bottom = t[iy1, ix] + (t[iy1, ix1] - t[iy1, ix]) * tx
        return top + (bottom - top) * ty

    def fbm(self, x: np.ndarray, y: np.ndarray, octaves: int = 3) -> np.ndarray:
        total, amp, norm = 0.0, 1.0, 0.0
        for octave in range(octaves):
            scale = 2.0**octave
            total = total + amp * self(x * scale + 13.7 * octave, y * scale + 7.3 * octave)
            norm += amp
            amp *= 0.5
        return total / norm

    def cell(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """A random value in [-1, 1] per integer cell (window panes, pavers)."""
        return self.table[np.asarray(i, np.int64) % self.size, np.asarray(j, np.int64) % self.size]


# ----------------------------------------------------------------------------- object shapes
# Painters get metric coordinates inside the billboard: xm from its left edge, ym down from
# its top, and return (mask, rgb).


def _ellipse(a: np.ndarray, b: np.ndarray, ca: float, cb: float, ra: float, rb: float):
    return ((a - ca) / ra) ** 2 + ((b - cb) / rb) ** 2 <= 1


def _segment_distance(x, y, x0, y0, x1, y1):
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0, 1)
    return np.hypot(x - (x0 + t * dx), y - (y0 + t * dy))


def _car_painter(rng, width, height, front: bool):
    body = _pick(rng, _CAR_COLOURS, 0.1)
    glass = _jitter(rng, np.array([0.12, 0.14, 0.17], np.float32), 0.3)
    lamp = np.array([0.95, 0.92, 0.8] if front else [0.75, 0.05, 0.05], np.float32)
    roof = rng.uniform(0.04, 0.12)
    waist = rng.uniform(0.38, 0.46)

    def paint(xm, ym):
        a, b = xm / width, ym / height
        taper = 0.1 + 0.1 * (waist - b) / (waist - roof)
        cabin = (b >= roof) & (b < waist) & (a >= taper) & (a <= 1 - taper)
        lower = (b >= waist) & (b < 0.9) & ~(((a < 0.03) | (a > 0.97)) & (b < waist + 0.05))
        wheels = (b >= 0.8) & (((a >= 0.05) & (a <= 0.25)) | ((a >= 0.75) & (a <= 0.95)))
        under = (b >= 0.86) & (a > 0.25) & (a < 0.75)
        mask = cabin | lower | wheels | under
        shade = (1.12 - 0.35 * b)[..., None]
        rgb = np.broadcast_to(body, a.shape + (3,)) * shade
        window = cabin & (b > roof + 0.04) & (a > taper + 0.05) & (a < 1 - taper - 0.05)
        rgb[window] = glass * (1 + 0.6 * (waist - b[window]))[:, None]
        lamps = (b > waist + 0.06) & (b < waist + 0.16) & ((a < 0.17) | (a > 0.83)) & lower
        rgb[lamps] = lamp
        plate = (b > 0.62) & (b < 0.7) & (np.abs(a - 0.5) < 0.11)
        rgb[plate] = (0.9, 0.9, 0.88)
        rgb[(b >= 0.8) & (b < 0.88) & lower] *= 0.45
        rgb[wheels | under] = (0.04, 0.04, 0.045)
        return mask, rgb

    return paint


def _box_vehicle_painter(rng, width, height, kind: str):
    body = _pick(rng, _VEHICLE_COLOURS, 0.1)
    glass = _jitter(rng, np.array([0.1, 0.12, 0.15], np.float32), 0.3)
    windscreen = {"truck": (0.04, 0.3), "bus": (0.06, 0.4), "train": (0.1, 0.45)}[kind]

    def paint(xm, ym):
        a, b = xm / width, ym / height
        corner = ((a < 0.04) | (a > 0.96)) & (b < 0.03)
        shell = (b < 0.9) & ~corner
        wheels = (b >= 0.85) & (((a >= 0.06) & (a <= 0.3)) | ((a >= 0.7) & (a <= 0.94)))
        mask = shell | wheels
        rgb = np.broadcast_to(body, a.shape + (3,)) * (1.1 - 0.3 * b)[..., None]
        win = (b > windscreen[0]) & (b < windscreen[1]) & (a > 0.08) & (a < 0.92)
        if kind == "truck":  # a closed cargo box: a door seam instead of a window
            win = (b > 0.05) & (b < 0.75) & (np.abs(a - 0.5) < 0.01)
        rgb[win] = glass
        rgb[(b > 0.72) & (b < 0.8) & ((a < 0.12) | (a > 0.88))] = (0.8, 0.2, 0.1)
        rgb[(b >= 0.8) & shell] *= 0.4
        rgb[wheels] = (0.04, 0.04, 0.045)
        return mask, rgb

    return paint


def _person_painter(rng, width, height, helmet: bool = False):
    skin = _jitter(rng, np.array([0.78, 0.6, 0.48], np.float32), 0.25)
    hair = _pick(rng, _CLOTHES[:2], 0.3)
    if helmet:
        hair = _pick(rng, _VEHICLE_COLOURS, 0.1)
    shirt, pants = _pick(rng, _CLOTHES, 0.2), _pick(rng, _CLOTHES[:5], 0.2)
    stride = rng.uniform(0.0, 0.18)
    girth = rng.uniform(0.3, 0.4)

    def paint(xm, ym):
        a, b = xm / width, ym / height
        head = _ellipse(a, b, 0.5, 0.07, 0.2, 0.07)
        torso = (b >= 0.13) & (b < 0.55) & (np.abs(a - 0.5) <= girth + 0.08 - 0.15 * (b - 0.13))
        spread = stride * np.clip((b - 0.5) / 0.5, 0, 1)
        legs = (b >= 0.5) & (
            (np.abs(a - (0.37 - spread)) <= 0.12) | (np.abs(a - (0.63 + spread)) <= 0.12)
        )
        mask = head | torso | legs
        rgb = np.empty(a.shape + (3,), np.float32)
        rgb[...] = pants
        rgb[torso] = shirt
        rgb[head] = skin
        rgb[head & (b < 0.045 + 0.02 * helmet)] = hair
        rgb[legs & (b > 0.96)] = (0.05, 0.05, 0.05)
        rgb *= (1.1 - 0.2 * b)[..., None]
        return mask, rgb

    return paint


def _two_wheeler_painter(rng, width, height, motor: bool):
    frame = _pick(rng, _CAR_COLOURS if motor else _CLOTHES, 0.15)
    radius = height * (0.3 if motor else 0.32)
    hubs = ((radius + 0.02, height - radius), (width - radius - 0.02, height - radius))

    def paint(xm, ym):
        dists = [np.hypot(xm - hx, ym - hy) for hx, hy in hubs]
        if motor:
            wheels = (dists[0] <= radius) | (dists[1] <= radius)
            body = _ellipse(xm, ym, width / 2, height * 0.45, width * 0.33, height * 0.25)
            bar = _segment_distance(xm, ym, hubs[1][0], hubs[1][1], width * 0.78, height * 0.1)
            parts = body | (bar < 0.05)
        else:
            wheels = (np.abs(dists[0] - radius) <= 0.045) | (np.abs(dists[1] - radius) <= 0.045)
            seat = (width * 0.42, height * 0.25)
            head = (width * 0.78, height * 0.2)
            crank = (width * 0.48, height - radius)
            tubes = [
                (hubs[0], seat),
                (seat, head),
                (head, hubs[1]),
                (seat, crank),
                (crank, head),
                (hubs[0], crank),
            ]
            parts = np.zeros(xm.shape, bool)
            for (x0, y0), (x1, y1) in tubes:
                parts |= _segment_distance(xm, ym, x0, y0, x1, y1) < 0.035
            parts |= (np.abs(ym - height * 0.1) < 0.03) & (np.abs(xm - head[0]) < 0.12)
        mask = wheels | parts
        rgb = np.empty(xm.shape + (3,), np.float32)
        rgb[...] = frame
        rgb[wheels] = (0.05, 0.05, 0.05)
        return mask, rgb

    return paint


def _tree_painter(rng, noise: _Noise, width, height, trunk_height):
    leaf = _jitter(rng, np.array([0.22, 0.34, 0.12], np.float32), 0.25)
    bark = _jitter(rng, np.array([0.3, 0.22, 0.15], np.float32), 0.2)
    offset = rng.uniform(0, 64, 2)
    crown_h = height - trunk_height * 0.7

    def paint(xm, ym):
        a = (xm - width / 2) / (width / 2)
        b = (ym - crown_h / 2) / (crown_h / 2)
        ragged = 1 + 0.22 * noise(xm * 1.5 + offset[0], ym * 1.5 + offset[1])
        crown = a * a + b * b <= ragged
        trunk = (np.abs(xm - width / 2) < 0.15 + 0.05 * (ym > height - 0.3)) & (ym > crown_h * 0.6)
        mask = crown | trunk
        texture = noise.fbm(xm * 3 + offset[1], ym * 3 + offset[0])
        rgb = leaf * (1 + 0.45 * texture - 0.25 * b)[..., None]
        rgb[trunk & ~crown] = bark
        return mask, rgb.astype(np.float32)

    return paint


def _flat_painter(colour: np.ndarray, shape: str = "box", width: float = 1, height: float = 1):
    def paint(xm, ym):
        if shape == "disc":
            mask = _ellipse(xm, ym, width / 2, height / 2, width / 2, height / 2)
        elif shape == "triangle":
            mask = np.abs(xm - width / 2) <= ym / height * width / 2
        else:
            mask = np.ones(xm.shape, bool)
        rgb = np.empty(xm.shape + (3,), np.float32)
        rgb[...] = colour
        if shape in ("disc", "triangle"):  # a white inner field inside a coloured rim
            inner = _ellipse(xm, ym, width / 2, height * 0.55, width * 0.3, height * 0.3)
            rgb[inner & mask] = (0.92, 0.92, 0.9)
        return mask, rgb

    return paint


def _traffic_light_painter(rng, width, height):
    lit = rng.integers(3)
    lamps = np.array([[0.95, 0.15, 0.1], [0.95, 0.7, 0.1], [0.2, 0.9, 0.3]], np.float32)

    def paint(xm, ym):
        rgb = np.empty(xm.shape + (3,), np.float32)
        rgb[...] = (0.08, 0.08, 0.08)
        for i in range(3):
            disc = _ellipse(xm, ym, width / 2, height * (i + 0.5) / 3, width * 0.3, height * 0.1)
            rgb[disc] = lamps[i] if i == lit else lamps[i] * 0.25
        return np.ones(xm.shape, bool), rgb

    return paint


def _pole_painter(colour):
    def paint(xm, ym):
        rgb = np.empty(xm.shape + (3,), np.float32)
        rgb[...] = colour
        return np.ones(xm.shape, bool), rgb

    return paint


def _lamp_painter(colour, width, arm):
    """A pole of ``width`` at the billboard's centre with an arm of signed length ``arm``."""
    total = width + abs(arm) * 2

    def paint(xm, ym):
        centre = total / 2
        mask = np.abs(xm - centre) <= width / 2
        offset = xm - centre
        mask |= (ym < 0.12) & (offset * np.sign(arm) >= 0) & (np.abs(offset) <= abs(arm))
        rgb = np.empty(xm.shape + (3,), np.float32)
        rgb[...] = colour
        return mask, rgb

    return paint


# ----------------------------------------------------------------------------- scene layout


def _sample_street(rng: np.random.Generator) -> _Street:
    lanes = int(rng.choice([1, 2, 2, 3, 4]))
    lane_width = rng.uniform(2.9, 3.6)
    ego_lane = int(rng.integers(lanes))
    shift = rng.uniform(-0.3, 0.3)
    left = (ego_lane + 0.5) * lane_width + shift
    right = (lanes - ego_lane - 0.5) * lane_width - shift
    lines = [-left + k * lane_width for k in range(1, lanes)]
    # Parking lanes widen the road on one or both sides.
    if rng.random() < 0.4:
        left += 2.2
    if rng.random() < 0.3:
        right += 2.2
    sidewalk = (rng.uniform(1.5, 4.5), rng.uniform(1.5, 4.5))
    terrain = tuple(rng.uniform(1, 3) if rng.random() < 0.35 else 0.0 for _ in range(2))
    end = rng.uniform(60, 220) if rng.random() < 0.75 else math.inf
    crosswalk = rng.uniform(8, 35) if rng.random() < 0.2 else math.inf
    return _Street(left, right, lane_width, lines, sidewalk, terrain, end, crosswalk)


def _edge(street: _Street, side: int) -> float:
    """|X| of the road edge on ``side`` (-1 left, +1 right)."""
    return street.left if side < 0 else street.right


_FOLIAGE = np.array([0.2, 0.32, 0.12], np.float32)


def _block(
    rng, side: int, offset: float, start: float, end: float, top: float, foliage: bool
) -> _Plane:
    """A building facade (random window grid, maybe shop windows) or a row of trees."""
    if foliage:
        return _Plane(
            side, offset, start, end, top, VEGETATION, "foliage", _jitter(rng, _FOLIAGE, 0.2), {}
        )
    params = {
        "floor": rng.uniform(2.9, 3.6),
        "spacing": rng.uniform(1.8, 3.8),
        "win_w": rng.uniform(0.35, 0.6),
        "win_h": rng.uniform(0.4, 0.6),
        "glass": _jitter(rng, np.array([0.18, 0.22, 0.28], np.float32), 0.3),
        "shop": bool(rng.random() < 0.4),
        "phase": rng.uniform(0, 10),
    }
    return _Plane(
        side, offset, start, end, top, BUILDING, "facade", _pick(rng, _BUILDING_COLOURS), params
    )


def _sample_planes(rng: np.random.Generator, street: _Street) -> list[_Plane]:
    planes: list[_Plane] = []
    horizon = street.end if math.isfinite(street.end) else 400.0
    for index, side in enumerate((-1, 1)):
        walk = _edge(street, side) + street.sidewalk[index]
        front = walk + street.terrain[index]
        z = rng.uniform(-2, 6)
        while z < horizon:
            length = rng.uniform(8, 30)
            if rng.random() < 0.15:  # a gap between buildings
                z += rng.uniform(3, 10)
                continue
            setback = rng.uniform(0, 1.5) if rng.random() < 0.4 else 0.0
            planes.append(
                _block(
                    rng,
                    side,
                    front + setback,
                    z,
                    min(z + length, horizon),
                    rng.uniform(7, 26),
                    foliage=False,
                )
            )
            z += length
        # A back row (trees or taller buildings) fills the gaps.
        planes.append(
            _block(
                rng,
                side,
                front + rng.uniform(10, 20),
                -5,
                horizon,
                rng.uniform(8, 20),
                foliage=rng.random() < 0.5,
            )
        )
        # Hedges, fences and walls at the back of the sidewalk.
        for _ in range(int(rng.integers(0, 3))):
            kind = str(rng.choice(["hedge", "fence", "wall"]))
            z0 = rng.uniform(0, 60)
            label = {"hedge": VEGETATION, "fence": FENCE, "wall": WALL}[kind]
            colour = {
                "hedge": np.array([0.18, 0.3, 0.1], np.float32),
                "fence": _pick(
                    rng,
                    np.array(
                        [[0.35, 0.35, 0.35], [0.2, 0.3, 0.22], [0.45, 0.35, 0.25]], np.float32
                    ),
                ),
                "wall": np.array([0.55, 0.53, 0.5], np.float32),
            }[kind]
            planes.append(
                _Plane(
                    side,
                    walk - 0.1,
                    z0,
                    z0 + rng.uniform(5, 30),
                    rng.uniform(0.8, 2.0),
                    label,
                    kind,
                    _jitter(rng, colour),
                    {},
                )
            )
    if math.isfinite(street.end):  # the buildings (and some trees) across the far end
        x = -rng.uniform(150, 200)
        while x < 200:
            width = rng.uniform(8, 30)
            planes.append(
                _block(
                    rng, 0, street.end, x, x + width, rng.uniform(6, 30), foliage=rng.random() < 0.2
                )
            )
            x += width
    return planes


def _sample_billboards(
    rng: np.random.Generator, street: _Street, noise: _Noise
) -> list[_Billboard]:
    things: list[_Billboard] = []

    def add(label, x_centre, z, width, height, paint, bottom=0.0, individual=True):
        things.append(
            _Billboard(
                label,
                x_centre - width / 2,
                x_centre + width / 2,
                z,
                bottom,
                bottom + height,
                paint,
                individual,
            )
        )

    # Vehicles in lanes (rear views ahead, front views in oncoming lanes) and parked ones.
    lane_centres = [
        -street.left + (k + 0.5) * street.lane_width for k in range(len(street.lane_lines) + 1)
    ]
    for centre in lane_centres:
        z = rng.uniform(4 if abs(centre) > 1.5 else 7, 18)
        while z < 80 and rng.random() < 0.75:
            x = centre + rng.uniform(-0.4, 0.4)
            kind = rng.random()
            front = centre < -street.lane_width / 2 and rng.random() < 0.7
            if kind < 0.06:
                w, h = rng.uniform(2.3, 2.5), rng.uniform(2.9, 3.6)
                add(TRUCK, x, z, w, h, _box_vehicle_painter(rng, w, h, "truck"))
            elif kind < 0.11:
                w, h = 2.55, rng.uniform(2.9, 3.2)
                add(BUS, x, z, w, h, _box_vehicle_painter(rng, w, h, "bus"))
            elif kind < 0.13:
                w, h = 2.65, 3.5
                add(TRAIN, x, z, w, h, _box_vehicle_painter(rng, w, h, "train"))
            else:
                w, h = rng.uniform(1.7, 1.95), rng.uniform(1.4, 1.6)
                add(CAR, x, z, w, h, _car_painter(rng, w, h, front))
            z += rng.uniform(9, 30)
    for side in (-1, 1):
        if rng.random() < 0.5:
            z = rng.uniform(3, 15)
            while z < 70:
                w, h = rng.uniform(1.7, 1.95), rng.uniform(1.4, 1.6)
                x = side * (_edge(street, side) - 1.1)
                add(CAR, x, z, w, h, _car_painter(rng, w, h, rng.random() < 0.5))
                z += rng.uniform(4.6, 12)

    # Pedestrians on the sidewalks, now and then crossing the road.
    for _ in range(int(rng.integers(0, 9))):
        side = -1 if rng.random() < 0.5 else 1
        index = 0 if side < 0 else 1
        if rng.random() < 0.15:
            x = rng.uniform(-street.left, street.right)
        else:
            x = side * (_edge(street, side) + rng.uniform(0.4, street.sidewalk[index] - 0.3))
        w, h = rng.uniform(0.45, 0.6), rng.uniform(1.6, 1.9)
        add(PERSON, x, rng.uniform(3, 45), w, h, _person_painter(rng, w, h))
    if rng.random() < 0.25:  # a crowd: one group region, no individual instances
        side = -1 if rng.random() < 0.5 else 1
        index = 0 if side < 0 else 1
        centre = side * (_edge(street, side) + street.sidewalk[index] / 2)
        z = rng.uniform(8, 35)
        for _ in range(int(rng.integers(3, 7))):
            w, h = rng.uniform(0.45, 0.6), rng.uniform(1.6, 1.9)
            add(
                PERSON,
                centre + rng.uniform(-1, 1),
                z + rng.uniform(-1, 1),
                w,
                h,
                _person_painter(rng, w, h),
                individual=False,
            )

    # Cyclists and motorcyclists near the road edge, seen from the side.
    for _ in range(int(rng.integers(0, 3))):
        motor = rng.random() < 0.35
        side = -1 if rng.random() < 0.5 else 1
        x = side * (_edge(street, side) - rng.uniform(0.6, 1.5))
        z = rng.uniform(5, 40)
        w, h = (2.0, 1.15) if motor else (1.7, 1.05)
        add(MOTORCYCLE if motor else BICYCLE, x, z, w, h, _two_wheeler_painter(rng, w, h, motor))
        rw, rh = rng.uniform(0.5, 0.6), rng.uniform(1.4, 1.55)
        add(
            RIDER,
            x - 0.1 * w,
            z - 1e-3,
            rw,
            rh,
            _person_painter(rng, rw, rh, helmet=motor),
            bottom=0.3,
        )

    # Street furniture: trees, poles, signs, traffic lights, bins.
    for index, side in enumerate((-1, 1)):
        walk = _edge(street, side) + street.sidewalk[index]
        z = rng.uniform(2, 12)
        if rng.random() < 0.6:
            while z < 90:
                w, h = rng.uniform(2.5, 5.5), rng.uniform(5, 10)
                x = side * (walk + street.terrain[index] / 2 - 0.6)
                add(
                    VEGETATION,
                    x,
                    z,
                    w,
                    h,
                    _tree_painter(rng, noise, w, h, rng.uniform(1.5, 3)),
                    individual=False,
                )
                z += rng.uniform(7, 16)
        z = rng.uniform(3, 20)
        while z < 90:
            x = side * (_edge(street, side) + 0.35)
            kind = rng.random()
            grey = _jitter(rng, np.array([0.4, 0.42, 0.42], np.float32), 0.2)
            if kind < 0.35:  # a sign on a short pole
                top = rng.uniform(2.2, 2.8)
                add(POLE, x, z, 0.08, top, _pole_painter(grey), individual=False)
                size = rng.uniform(0.55, 0.8)
                shape = str(rng.choice(["disc", "triangle", "box"]))
                colour = _pick(
                    rng,
                    np.array([[0.75, 0.1, 0.1], [0.1, 0.25, 0.65], [0.9, 0.75, 0.1]], np.float32),
                )
                add(
                    SIGN,
                    x,
                    z - 0.05,
                    size,
                    size,
                    _flat_painter(colour, shape, size, size),
                    bottom=top - 0.1,
                    individual=False,
                )
            elif kind < 0.5:  # a traffic light
                top = rng.uniform(2.6, 4.2)
                add(POLE, x, z, 0.12, top, _pole_painter(grey), individual=False)
                add(
                    LIGHT,
                    x,
                    z - 0.05,
                    0.35,
                    0.95,
                    _traffic_light_painter(rng, 0.35, 0.95),
                    bottom=top - 0.3,
                    individual=False,
                )
            elif kind < 0.85:  # a street lamp with an arm over the road
                w, h, arm = rng.uniform(0.12, 0.25), rng.uniform(5, 9), -side * 1.2
                add(POLE, x, z, w + abs(arm) * 2, h, _lamp_painter(grey, w, arm), individual=False)
            else:  # a bin or bollard
                w, h = rng.uniform(0.4, 1.0), rng.uniform(0.6, 1.1)
                add(
                    STATIC,
                    side * (walk - 0.5),
                    z,
                    w,
                    h,
                    _flat_painter(_pick(rng, _CLOTHES, 0.2)),
                    individual=False,
                )
            z += rng.uniform(8, 25)
    return things


# ----------------------------------------------------------------------------- rendering


class _Renderer:
    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        self.rng = rng
        self.height, self.width = height, width
        self.cam = _Camera.at_resolution(height, width, round(float(rng.uniform(0.02, 0.06)), 4))
        self.cos, self.sin = math.cos(self.cam.pitch), math.sin(self.cam.pitch)
        self.xn = ((np.arange(width) - self.cam.u0) / self.cam.fx).astype(np.float32)
        self.yn = ((np.arange(height) - self.cam.v0) / self.cam.fy).astype(np.float32)
        self.rgb = np.zeros((height, width, 3), np.float32)
        self.label = np.zeros((height, width), np.uint8)
        self.instance = np.zeros((height, width), np.int32)
        self.depth = np.full((height, width), np.inf, np.float32)
        self.noise = _Noise(rng)
        self.sunny = rng.random() < 0.6
        self.sun_side = -1 if rng.random() < 0.5 else 1
        self.horizon_colour = _jitter(rng, np.array([0.85, 0.87, 0.9], np.float32), 0.05)

    # Background: ground, planes, sky -------------------------------------------------------
    def background(self, street: _Street, planes: list[_Plane]) -> None:
        cam, w = self.cam, self.width
        denom = self.cos * self.yn + self.sin
        ground_row = np.where(denom > 1e-6, cam.height / np.maximum(denom, 1e-6), np.inf)
        self.depth[:] = ground_row[:, None]
        surface = np.where(np.isfinite(self.depth), 0, -1).astype(np.int16)
        along_factor = self.cos - self.yn * self.sin  # Z_world / Z_camera per row
        lo, hi = float(along_factor.min()), float(along_factor.max())
        for index, plane in enumerate(planes, start=1):
            if plane.side:
                x = plane.side * plane.offset
                t_near, t_far = max(plane.start, 0.1) / hi, plane.end / lo
                xn_lo, xn_hi = sorted((x / t_near, x / t_far))
                cols = np.nonzero((self.xn >= xn_lo) & (self.xn <= xn_hi))[0]
                if cols.size == 0:
                    continue
                c0, c1 = cols[0], cols[-1] + 1
                t = (x / self.xn[c0:c1])[None, :]
                along = t * along_factor[:, None]
            else:
                c0, c1 = 0, w
                t = (plane.offset / along_factor)[:, None]
                along = t * self.xn[None, :]
            above = cam.height - t * (self.yn[:, None] * self.cos + self.sin)
            hit = (along >= plane.start) & (along < plane.end) & (t > 0)
            hit &= above <= self._top(plane, along)
            hit &= t < self.depth[:, c0:c1]
            if hit.any():
                self.depth[:, c0:c1] = np.where(hit, t, self.depth[:, c0:c1])
                surface[:, c0:c1] = np.where(hit, index, surface[:, c0:c1])
        self._paint_ground(street, surface == 0)
        for index, plane in enumerate(planes, start=1):
            self._paint_plane(plane, surface == index)
        self._paint_sky(surface < 0)

    def _top(self, plane: _Plane, along: np.ndarray) -> np.ndarray | float:
        if plane.kind in ("foliage", "hedge"):  # ragged tree tops
            amp = 1.5 if plane.kind == "foliage" else 0.15
            return plane.top + amp * self.noise(along * 0.4 + 31.0, np.full_like(along, 5.5))
        return plane.top

    def _hits(self, mask: np.ndarray):
        rows, cols = np.nonzero(mask)
        t = self.depth[rows, cols]
        x = self.xn[cols] * t
        z = t * (self.cos - self.yn[rows] * self.sin)
        above = self.cam.height - t * (self.yn[rows] * self.cos + self.sin)
        return rows, cols, x, z, above

    def _paint_ground(self, street: _Street, mask: np.ndarray) -> None:
        rows, cols, x, z, _ = self._hits(mask)
        noise = self.noise
        left = x < 0
        edge = np.where(left, street.left, street.right)
        walk = edge + np.where(left, street.sidewalk[0], street.sidewalk[1])
        green = walk + np.where(left, street.terrain[0], street.terrain[1])
        dist = np.abs(x)
        label = np.full(x.shape, SIDEWALK, np.uint8)
        label[dist <= edge] = ROAD
        label[(dist > walk) & (dist <= green)] = TERRAIN
        rng = self.rng
        road_c = _jitter(rng, np.array([0.34, 0.34, 0.36], np.float32), 0.15)
        walk_c = _pick(
            rng,
            np.array([[0.58, 0.56, 0.53], [0.55, 0.45, 0.42], [0.5, 0.5, 0.52]], np.float32),
            0.1,
        )
        terrain_c = _jitter(rng, np.array([0.38, 0.4, 0.22], np.float32), 0.15)
        rgb = np.empty((x.size, 3), np.float32)
        fine = noise(x / 0.12, z / 0.12)
        coarse = noise.fbm(x / 1.5 + 20, z / 1.5)

        road = label == ROAD
        rgb[road] = road_c * (1 + 0.07 * coarse[road] + 0.05 * fine[road])[:, None]
        patch = road & (noise(x / 5 + 40, z / 5) > 0.55)
        rgb[patch] *= 0.82
        marks = np.zeros(x.shape, bool)
        for line in street.lane_lines:
            marks |= (np.abs(x - line) < 0.08) & (np.mod(z, 9.0) < 3.0)
        for side_edge in (-street.left + 0.25, street.right - 0.25):
            marks |= np.abs(x - side_edge) < 0.07
        if math.isfinite(street.crosswalk):
            marks |= (z > street.crosswalk) & (z < street.crosswalk + 4) & (np.mod(x, 1.0) < 0.5)
        rgb[marks & road] = (0.82, 0.82, 0.8)

        side = label == SIDEWALK
        pavers = (np.mod(x, 0.6) < 0.05) | (np.mod(z, 0.6) < 0.05)
        tone = 1 + 0.05 * fine + 0.04 * noise.cell(np.floor(x / 0.6), np.floor(z / 0.6) + 7)
        rgb[side] = walk_c * (tone[side] * np.where(pavers[side], 0.85, 1.0))[:, None]
        curb = side & (dist - edge < 0.2)
        rgb[curb] = walk_c * 1.15

        ter = label == TERRAIN
        rgb[ter] = terrain_c * (1 + 0.2 * noise.fbm(x[ter] / 0.4, z[ter] / 0.4))[:, None]

        if self.sunny:  # the buildings on one side shade part of the street
            shade_line = self.sun_side * x > rng.uniform(-2, 4)
            rgb[shade_line] *= 0.6
        self._write(rows, cols, rgb, label)

    def _paint_plane(self, plane: _Plane, mask: np.ndarray) -> None:
        if not mask.any():
            return
        rows, cols, x, z, up = self._hits(mask)
        along = z if plane.side else x
        p, noise, base = plane.params, self.noise, plane.colour
        if plane.kind == "facade":
            rgb = base * (1 + 0.05 * noise(along / 0.5, up / 0.5))[:, None]
            column, floor = np.floor(along / p["spacing"] + p["phase"]), np.floor(up / p["floor"])
            fa = np.mod(along / p["spacing"] + p["phase"], 1.0)
            fu = np.mod(up / p["floor"], 1.0)
            window = (np.abs(fa - 0.5) < p["win_w"] / 2) & (np.abs(fu - 0.55) < p["win_h"] / 2)
            window &= (floor >= 1) & (up < plane.top - 0.8)
            glint = 0.75 + 0.35 * noise.cell(column, floor + 3)
            rgb[window] = p["glass"] * glint[window][:, None]
            if p["shop"]:
                shop = (up < p["floor"] * 0.8) & (np.mod(along / 4.0, 1.0) < 0.7)
                rgb[shop] = p["glass"] * 0.7
            rgb[up > plane.top - 0.4] *= 0.75
        elif plane.kind in ("foliage", "hedge"):
            texture = noise.fbm(along / 0.35 + 3, up / 0.35)
            rgb = base * (1 + 0.4 * texture)[:, None]
        elif plane.kind == "fence":
            slats = np.mod(along / 0.14, 1.0) < 0.55
            rgb = base * np.where(slats, 1.0, 0.55)[:, None]
        else:  # wall
            rgb = base * (1 + 0.08 * noise(along / 0.3, up / 0.3))[:, None]
            rgb[np.mod(up, 0.5) < 0.04] *= 0.8
        if plane.side and self.sunny:
            rgb *= 1.1 if plane.side == self.sun_side else 0.7
        self._write(rows, cols, rgb, np.full(rows.size, plane.label, np.uint8))

    def _paint_sky(self, mask: np.ndarray) -> None:
        rows, cols = np.nonzero(mask)
        rng = self.rng
        if self.sunny:
            zenith = _jitter(rng, np.array([0.35, 0.55, 0.85], np.float32), 0.1)
        else:
            zenith = _jitter(rng, np.array([0.7, 0.72, 0.75], np.float32), 0.08)
        horizon_row = self.cam.v0 - self.cam.fy * math.tan(self.cam.pitch)
        up = np.clip((horizon_row - rows) / max(horizon_row, 1.0), 0, 1) ** 0.6
        rgb = self.horizon_colour * (1 - up)[:, None] + zenith * up[:, None]
        clouds = self.noise.fbm(self.xn[cols] * 3 + 50, self.yn[rows] * 8)
        cover = np.clip((clouds - rng.uniform(-0.2, 0.4)) * 2.5, 0, 1)[:, None]
        rgb = rgb * (1 - cover) + np.float32(0.92) * cover
        self._write(rows, cols, rgb, np.full(rows.size, SKY, np.uint8))

    def _write(self, rows, cols, rgb, label) -> None:
        self.rgb[rows, cols] = rgb
        self.label[rows, cols] = label
        self.instance[rows, cols] = label

    # Billboards --------------------------------------------------------------------------
    def billboards(self, things: list[_Billboard]) -> None:
        counters: dict[int, int] = {}
        for thing in sorted(things, key=lambda b: -b.z):  # painter's order: far to near
            self._billboard(thing, counters)

    def _billboard(self, thing: _Billboard, counters: dict[int, int]) -> None:
        cam, z = self.cam, thing.z
        r0 = max(0, math.ceil(cam.row_at(z, thing.top)))
        r1 = min(self.height - 1, math.floor(cam.row_at(z, thing.bottom)))
        c0 = max(0, math.ceil(cam.u0 + cam.fx * thing.x0 / z))
        c1 = min(self.width - 1, math.floor(cam.u0 + cam.fx * thing.x1 / z))
        if r0 > r1 or c0 > c1:
            return
        above = cam.height - z * (self.yn[r0 : r1 + 1] * self.cos + self.sin)
        xm, ym = np.broadcast_arrays(
            (self.xn[c0 : c1 + 1] * z - thing.x0)[None, :], (thing.top - above)[:, None]
        )
        mask, rgb = thing.paint(xm, ym)
        visible = mask & (z < self.depth[r0 : r1 + 1, c0 : c1 + 1])
        if not visible.any():
            return
        # Fine texture and a per-object brightness so identical colours still differ.
        offset = float(self.rng.uniform(0, 64))
        grain = 1 + 0.06 * self.noise(xm / 0.07 + offset, ym / 0.07)
        rgb = rgb * (grain * self.rng.uniform(0.85, 1.15))[..., None]
        if thing.individual:
            k = counters.get(thing.label, 0)
            counters[thing.label] = k + 1
            instance = thing.label * 1000 + k
        else:
            instance = thing.label
        region = (slice(r0, r1 + 1), slice(c0, c1 + 1))
        self.rgb[region][visible] = rgb[visible]
        self.label[region][visible] = thing.label
        self.instance[region][visible] = instance
        self.depth[region][visible] = z

    # Ego vehicle and the camera's response ---------------------------------------------------
    def ego_vehicle(self) -> None:
        rng, h, w = self.rng, self.height, self.width
        peak = rng.uniform(0.08, 0.18) * h
        centre = w * rng.uniform(0.45, 0.55)
        cols = np.arange(w)
        hood = h - peak * (1 - 0.5 * ((cols - centre) / (w / 2)) ** 2)
        mask = np.arange(h)[:, None] >= hood[None, :]
        paint = _pick(rng, _CAR_COLOURS[[0, 1, 2, 3, 6]], 0.1)
        rows, cc = np.nonzero(mask)
        depth_in = np.clip((rows - hood[cc]) / max(peak, 1.0), 0, 1)
        reflection = self.rgb[np.clip(2 * hood[cc].astype(int) - rows, 0, h - 1), cc]
        rgb = paint * (0.6 + 0.3 * depth_in)[:, None] * 0.7 + 0.3 * reflection
        self._write(rows, cc, rgb, np.full(rows.size, EGO, np.uint8))
        self.depth[rows, cc] = 0  # no valid disparity on the ego vehicle

    def photograph(self) -> np.ndarray:
        rng = self.rng
        depth = np.where(np.isfinite(self.depth), self.depth, np.inf)
        visibility = rng.uniform(150, 600)
        haze = (1 - np.exp(-depth / visibility)).astype(np.float32)
        haze[self.label == SKY] = 0
        haze[self.label == EGO] = 0
        rgb = self.rgb * (1 - haze[..., None]) + self.horizon_colour * haze[..., None]
        gain = rng.uniform(0.65, 1.25) * _jitter(rng, np.ones(3, np.float32), 0.08)
        rows = (np.arange(self.height) - self.height / 2) / self.height
        cols = (np.arange(self.width) - self.width / 2) / self.width
        vignette = 1 - 0.35 * (rows[:, None] ** 2 + cols[None, :] ** 2)
        rgb = rgb * gain * vignette[..., None]
        rgb = rgb * 255 + rng.normal(0, rng.uniform(2, 7), rgb.shape)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def generate_scene(rng: np.random.Generator, height: int, width: int) -> SyntheticScene:
    """Render one street scene with consistent labels, instances and disparity.

    Args:
        rng: the only source of randomness (the same state gives the same scene).
        height: image rows.
        width: image columns.

    Returns:
        The scene's arrays and camera JSON (intrinsics scaled to ``width`` x ``height``).
    """
    if height < 8 or width < 8:
        raise ValueError(f"synthetic scenes need at least 8x8 pixels, got {height}x{width}")
    renderer = _Renderer(rng, height, width)
    street = _sample_street(rng)
    renderer.background(street, _sample_planes(rng, street))
    renderer.billboards(_sample_billboards(rng, street, renderer.noise))
    if rng.random() < 0.5:
        renderer.ego_vehicle()
    image = renderer.photograph()
    valid = np.isfinite(renderer.depth) & (renderer.depth > 0)
    cam = renderer.cam
    disparity = np.zeros((height, width), np.float32)
    disparity[valid] = cam.fx * cam.baseline / renderer.depth[valid]
    return SyntheticScene(
        image=image,
        label_ids=renderer.label,
        instance_ids=renderer.instance,
        disparity=disparity,
        disparity_valid=valid,
        camera=cam.to_json(),
    )


# ----------------------------------------------------------------------------- encoding, files


def encode_disparity(disparity: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Disparity in pixels -> CityScapes 16-bit PNG values ``round(d * 256 + 1)``, 0 invalid."""
    if np.any(valid & ~(disparity >= 0)) or np.any(valid & (disparity > MAX_DISPARITY)):
        raise ValueError(
            f"disparity must lie in [0, {MAX_DISPARITY:.2f}] px on valid pixels to fit a "
            "16-bit CityScapes PNG; lower the resolution or move objects further away"
        )
    raw = np.rint(disparity.astype(np.float64) * 256 + 1)
    return np.where(valid, raw, 0).astype(np.uint16)


def save_png(path: str | Path, array: np.ndarray) -> None:
    """Write a PNG: uint8 HxW (L), HxWx3 (RGB), HxWx4 (RGBA) or uint16/int32 HxW (16-bit)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype == np.uint8:
        image = Image.fromarray(array)
    elif array.ndim == 2 and np.issubdtype(array.dtype, np.integer):
        if array.min(initial=0) < 0 or array.max(initial=0) > 65535:
            raise ValueError(f"{path}: values outside 0..65535 do not fit a 16-bit PNG")
        image = Image.fromarray(array.astype(np.uint16))
    else:
        raise ValueError(f"{path}: cannot store a {array.dtype} array of shape {array.shape}")
    image.save(path, format="PNG")


def _cities(split: str) -> list[str]:
    name = "".join(ch for ch in split if ch.isalnum()).capitalize() or "Split"
    return [f"synth{name}A", f"synth{name}B"]


def _frame_names(split: str, count: int) -> list[tuple[str, str]]:
    """(city, stem) for every image of a split: two cities, sequence numbers from 0."""
    cities = _cities(split)
    names, seq = [], {}
    for index in range(count):
        city = cities[index * len(cities) // count]
        seq[city] = seq.get(city, -1) + 1
        names.append((city, f"{city}_{seq[city]:06d}_{FRAME:06d}"))
    return names


def _scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    # crc32 is stable across runs (str hash is salted), so each image has its own stream.
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(split.encode()), index]))


def _marker(splits: Mapping[str, int], height: int, width: int, seed: int) -> dict:
    return {
        "generator": "mtlscene.data.synthetic",
        "version": GENERATOR_VERSION,
        "seed": int(seed),
        "splits": {str(k): int(v) for k, v in splits.items()},
        "height": int(height),
        "width": int(width),
    }


def _write_json(path: Path, content: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(content, indent=4, sort_keys=True) + "\n")
    os.replace(tmp, path)


def write_scene(root: Path, split: str, city: str, stem: str, scene: SyntheticScene) -> None:
    """Write one scene's five CityScapes files (plus the colour PNG) under ``root``."""
    gt = root / "gtFine" / split / city
    save_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", scene.image)
    save_png(gt / f"{stem}_gtFine_labelIds.png", scene.label_ids)
    save_png(gt / f"{stem}_gtFine_instanceIds.png", scene.instance_ids)
    colour = np.concatenate(
        [label_id_palette()[scene.label_ids], np.full(scene.label_ids.shape + (1,), 255, np.uint8)],
        axis=-1,
    )
    save_png(gt / f"{stem}_gtFine_color.png", colour)
    save_png(
        root / "disparity" / split / city / f"{stem}_disparity.png",
        encode_disparity(scene.disparity, scene.disparity_valid),
    )
    camera = root / "camera" / split / city / f"{stem}_camera.json"
    camera.parent.mkdir(parents=True, exist_ok=True)
    camera.write_text(json.dumps(scene.camera, indent=4, sort_keys=True) + "\n")


def _prepare_root(root: Path) -> None:
    """Clear a previous synthetic dataset; refuse to write into anything else."""
    marker = root / MARKER_NAME
    present = [root / kind for kind in DATA_TYPES if (root / kind).exists()]
    if not present:
        return
    if not marker.is_file():
        raise FileExistsError(
            f"{root} already holds {', '.join(p.name for p in present)} but no {MARKER_NAME}: "
            "it looks like real data; choose an empty folder for the synthetic dataset"
        )
    for path in present:
        shutil.rmtree(path)


def generate_dataset(
    root: str | Path,
    splits: Mapping[str, int] = DEFAULT_SPLITS,
    height: int = 128,
    width: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Generate a synthetic CityScapes-format dataset under ``root``.

    Deterministic: the same arguments give byte-identical files, and every image has its own
    random stream derived from ``(seed, split, index)``, so changing one split's size leaves
    the images of the others unchanged. ``{root}/SYNTHETIC.json`` is marked complete only after
    the last file is written, so an interrupted run is detected by :func:`is_complete`; a
    previous synthetic dataset in ``root`` is replaced.

    Args:
        root: output folder (created if needed).
        splits: images per split name.
        height: image rows.
        width: image columns.
        seed: non-negative base seed.
        progress: show a tqdm progress bar.

    Returns:
        ``root`` as a Path.
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if any(int(n) < 0 for n in splits.values()):
        raise ValueError(f"split sizes must be non-negative, got {dict(splits)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _prepare_root(root)
    marker = _marker(splits, height, width, seed)
    _write_json(root / MARKER_NAME, {**marker, "complete": False})
    total = sum(int(n) for n in splits.values())
    with tqdm(total=total, desc="synthetic CityScapes", unit="img", disable=not progress) as bar:
        for split, count in splits.items():
            for index, (city, stem) in enumerate(_frame_names(split, int(count))):
                scene = generate_scene(_scene_rng(seed, split, index), height, width)
                write_scene(root, split, city, stem, scene)
                bar.update(1)
    _write_json(root / MARKER_NAME, {**marker, "complete": True})
    return root


def is_complete(
    root: str | Path,
    splits: Mapping[str, int] = DEFAULT_SPLITS,
    height: int = 128,
    width: int = 256,
    seed: int = 0,
) -> bool:
    """True when ``root`` holds a finished synthetic dataset made with these parameters."""
    try:
        found = json.loads((Path(root) / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return False
    expected = {**_marker(splits, height, width, seed), "complete": True}
    return found == expected
