"""Scene layout: the street, the planes along it and the objects standing in it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mtlscene.data.cityscapes.labels import label_id
from mtlscene.data.cityscapes.synthetic.painters import (
    box_vehicle_painter,
    car_painter,
    flat_painter,
    lamp_painter,
    person_painter,
    pole_painter,
    traffic_light_painter,
    tree_painter,
    two_wheeler_painter,
)
from mtlscene.data.cityscapes.synthetic.texture import (
    BUILDING_COLOURS,
    CLOTHES,
    jitter,
    pick,
)
from mtlscene.data.procedural import Noise

EGO, STATIC = label_id("ego vehicle"), label_id("static")
ROAD, SIDEWALK, TERRAIN = label_id("road"), label_id("sidewalk"), label_id("terrain")
BUILDING, WALL, FENCE = label_id("building"), label_id("wall"), label_id("fence")
POLE, LIGHT, SIGN = label_id("pole"), label_id("traffic light"), label_id("traffic sign")
VEGETATION, SKY = label_id("vegetation"), label_id("sky")
PERSON, RIDER, CAR = label_id("person"), label_id("rider"), label_id("car")
TRUCK, BUS, TRAIN = label_id("truck"), label_id("bus"), label_id("train")
MOTORCYCLE, BICYCLE = label_id("motorcycle"), label_id("bicycle")


@dataclass
class Plane:
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
class Billboard:
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
class Street:
    left: float  # road edges: road covers X in [-left, right]
    right: float
    lane_width: float
    lane_lines: list[float]
    sidewalk: tuple[float, float]  # widths (left, right)
    terrain: tuple[float, float]
    end: float  # Z of the far facade row (inf: the street runs to the horizon)
    crosswalk: float  # Z where a zebra crossing starts (inf: none)


def sample_street(rng: np.random.Generator) -> Street:
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
    return Street(left, right, lane_width, lines, sidewalk, terrain, end, crosswalk)


def _edge(street: Street, side: int) -> float:
    """|X| of the road edge on ``side`` (-1 left, +1 right)."""
    return street.left if side < 0 else street.right


_FOLIAGE = np.array([0.2, 0.32, 0.12], np.float32)


def _block(
    rng, side: int, offset: float, start: float, end: float, top: float, foliage: bool
) -> Plane:
    """A building facade (random window grid, maybe shop windows) or a row of trees."""
    if foliage:
        return Plane(
            side, offset, start, end, top, VEGETATION, "foliage", jitter(rng, _FOLIAGE, 0.2), {}
        )
    params = {
        "floor": rng.uniform(2.9, 3.6),
        "spacing": rng.uniform(1.8, 3.8),
        "win_w": rng.uniform(0.35, 0.6),
        "win_h": rng.uniform(0.4, 0.6),
        "glass": jitter(rng, np.array([0.18, 0.22, 0.28], np.float32), 0.3),
        "shop": bool(rng.random() < 0.4),
        "phase": rng.uniform(0, 10),
    }
    return Plane(
        side, offset, start, end, top, BUILDING, "facade", pick(rng, BUILDING_COLOURS), params
    )


def sample_planes(rng: np.random.Generator, street: Street) -> list[Plane]:
    planes: list[Plane] = []
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
                "fence": pick(
                    rng,
                    np.array(
                        [[0.35, 0.35, 0.35], [0.2, 0.3, 0.22], [0.45, 0.35, 0.25]], np.float32
                    ),
                ),
                "wall": np.array([0.55, 0.53, 0.5], np.float32),
            }[kind]
            planes.append(
                Plane(
                    side,
                    walk - 0.1,
                    z0,
                    z0 + rng.uniform(5, 30),
                    rng.uniform(0.8, 2.0),
                    label,
                    kind,
                    jitter(rng, colour),
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


def sample_billboards(rng: np.random.Generator, street: Street, noise: Noise) -> list[Billboard]:
    things: list[Billboard] = []

    def add(label, x_centre, z, width, height, paint, bottom=0.0, individual=True):
        things.append(
            Billboard(
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
                add(TRUCK, x, z, w, h, box_vehicle_painter(rng, w, h, "truck"))
            elif kind < 0.11:
                w, h = 2.55, rng.uniform(2.9, 3.2)
                add(BUS, x, z, w, h, box_vehicle_painter(rng, w, h, "bus"))
            elif kind < 0.13:
                w, h = 2.65, 3.5
                add(TRAIN, x, z, w, h, box_vehicle_painter(rng, w, h, "train"))
            else:
                w, h = rng.uniform(1.7, 1.95), rng.uniform(1.4, 1.6)
                add(CAR, x, z, w, h, car_painter(rng, w, h, front))
            z += rng.uniform(9, 30)
    for side in (-1, 1):
        if rng.random() < 0.5:
            z = rng.uniform(3, 15)
            while z < 70:
                w, h = rng.uniform(1.7, 1.95), rng.uniform(1.4, 1.6)
                x = side * (_edge(street, side) - 1.1)
                add(CAR, x, z, w, h, car_painter(rng, w, h, rng.random() < 0.5))
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
        add(PERSON, x, rng.uniform(3, 45), w, h, person_painter(rng, w, h))
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
                person_painter(rng, w, h),
                individual=False,
            )

    # Cyclists and motorcyclists near the road edge, seen from the side.
    for _ in range(int(rng.integers(0, 3))):
        motor = rng.random() < 0.35
        side = -1 if rng.random() < 0.5 else 1
        x = side * (_edge(street, side) - rng.uniform(0.6, 1.5))
        z = rng.uniform(5, 40)
        w, h = (2.0, 1.15) if motor else (1.7, 1.05)
        add(MOTORCYCLE if motor else BICYCLE, x, z, w, h, two_wheeler_painter(rng, w, h, motor))
        rw, rh = rng.uniform(0.5, 0.6), rng.uniform(1.4, 1.55)
        add(
            RIDER,
            x - 0.1 * w,
            z - 1e-3,
            rw,
            rh,
            person_painter(rng, rw, rh, helmet=motor),
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
                    tree_painter(rng, noise, w, h, rng.uniform(1.5, 3)),
                    individual=False,
                )
                z += rng.uniform(7, 16)
        z = rng.uniform(3, 20)
        while z < 90:
            x = side * (_edge(street, side) + 0.35)
            kind = rng.random()
            grey = jitter(rng, np.array([0.4, 0.42, 0.42], np.float32), 0.2)
            if kind < 0.35:  # a sign on a short pole
                top = rng.uniform(2.2, 2.8)
                add(POLE, x, z, 0.08, top, pole_painter(grey), individual=False)
                size = rng.uniform(0.55, 0.8)
                shape = str(rng.choice(["disc", "triangle", "box"]))
                colour = pick(
                    rng,
                    np.array([[0.75, 0.1, 0.1], [0.1, 0.25, 0.65], [0.9, 0.75, 0.1]], np.float32),
                )
                add(
                    SIGN,
                    x,
                    z - 0.05,
                    size,
                    size,
                    flat_painter(colour, shape, size, size),
                    bottom=top - 0.1,
                    individual=False,
                )
            elif kind < 0.5:  # a traffic light
                top = rng.uniform(2.6, 4.2)
                add(POLE, x, z, 0.12, top, pole_painter(grey), individual=False)
                add(
                    LIGHT,
                    x,
                    z - 0.05,
                    0.35,
                    0.95,
                    traffic_light_painter(rng, 0.35, 0.95),
                    bottom=top - 0.3,
                    individual=False,
                )
            elif kind < 0.85:  # a street lamp with an arm over the road
                w, h, arm = rng.uniform(0.12, 0.25), rng.uniform(5, 9), -side * 1.2
                add(POLE, x, z, w + abs(arm) * 2, h, lamp_painter(grey, w, arm), individual=False)
            else:  # a bin or bollard
                w, h = rng.uniform(0.4, 1.0), rng.uniform(0.6, 1.1)
                add(
                    STATIC,
                    side * (walk - 0.5),
                    z,
                    w,
                    h,
                    flat_painter(pick(rng, CLOTHES, 0.2)),
                    individual=False,
                )
            z += rng.uniform(8, 25)
    return things
