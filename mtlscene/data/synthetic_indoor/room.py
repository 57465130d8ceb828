"""A room to render: its walls, floor and ceiling, box furniture and flat wall decals.

World coordinates in metres: the room is the box ``[0, width] x [0, height] x [0, depth]``
(x, y up, z). Furniture is made of axis-aligned boxes standing in it; paintings, windows
and televisions are rectangles on the walls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mtlscene.data.nyuv2_layout import NYUV2_CLASS_NAMES

BED, BOOKS, CEILING, CHAIR, FLOOR, FURNITURE, OBJECTS = range(7)
PAINTING, SOFA, TABLE, TV, WALL, WINDOW = range(7, 13)
assert NYUV2_CLASS_NAMES[WINDOW] == "window" and NYUV2_CLASS_NAMES[BED] == "bed"

# Room surfaces, numbered as the ray caster reports them: (axis, side) -> surface.
FLOOR_SURFACE, CEILING_SURFACE = 0, 1
WALL_SURFACES = {(0, 0): 2, (0, 1): 3, (2, 0): 4, (2, 1): 5}
"""Walls by (axis of their normal, 0 for the wall at 0 or 1 for the far one)."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box: corners ``lo`` and ``hi`` (x, y, z), its class and look.

    Attributes:
        label: NYUv2 class (0..12), or -1 for unlabelled clutter.
        colour: base RGB in [0, 1].
        pattern: "plain", "fabric", "wood" or "books" (coloured spines along x or z).
    """

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    label: int
    colour: tuple[float, float, float]
    pattern: str = "plain"


@dataclass(frozen=True)
class Decal:
    """A rectangle on a wall: along-wall span ``(u0, u1)`` and height span ``(v0, v1)``.

    The along-wall coordinate is world z on walls facing x (axis 0) and world x on walls
    facing z (axis 2). ``depth_valid`` False models glass and screens a Kinect cannot see.
    """

    wall: int
    u: tuple[float, float]
    v: tuple[float, float]
    label: int
    colour: tuple[float, float, float]
    depth_valid: bool = True


@dataclass
class Room:
    """Everything in one scene, plus the look of its surfaces and light."""

    size: tuple[float, float, float]
    boxes: list[Box] = field(default_factory=list)
    decals: list[Decal] = field(default_factory=list)
    wall_colour: tuple[float, float, float] = (0.8, 0.78, 0.72)
    floor_colour: tuple[float, float, float] = (0.55, 0.4, 0.28)
    ceiling_colour: tuple[float, float, float] = (0.92, 0.92, 0.9)
    light: tuple[float, float, float] = (0.3, -1.0, 0.4)
    ambient: float = 0.45

    def footprint_free(self, x: float, z: float, margin: float) -> bool:
        """True when (x, z) is at least ``margin`` from every wall and box footprint."""
        width, _, depth = self.size
        if not (margin <= x <= width - margin and margin <= z <= depth - margin):
            return False
        return all(
            not (
                b.lo[0] - margin < x < b.hi[0] + margin and b.lo[2] - margin < z < b.hi[2] + margin
            )
            for b in self.boxes
        )


FURNITURE_COLOURS = np.array(
    [[0.45, 0.3, 0.18], [0.62, 0.48, 0.32], [0.85, 0.82, 0.75], [0.2, 0.2, 0.22], [0.5, 0.5, 0.5]]
)
FABRIC_COLOURS = np.array(
    [[0.35, 0.4, 0.55], [0.6, 0.25, 0.22], [0.7, 0.68, 0.6], [0.3, 0.45, 0.3], [0.5, 0.45, 0.6]]
)
WALL_COLOURS = np.array(
    [[0.85, 0.83, 0.78], [0.78, 0.8, 0.82], [0.82, 0.76, 0.62], [0.7, 0.78, 0.7], [0.9, 0.88, 0.85]]
)
FLOOR_COLOURS = np.array([[0.55, 0.4, 0.28], [0.7, 0.58, 0.42], [0.4, 0.4, 0.42], [0.6, 0.6, 0.56]])


def _colour(rng: np.random.Generator, palette: np.ndarray, amount: float = 0.12) -> tuple:
    base = palette[rng.integers(len(palette))] * rng.uniform(1 - amount, 1 + amount, 3)
    return tuple(float(c) for c in np.clip(base, 0, 1))


class _Placer:
    """Puts furniture on the floor without overlaps, against a wall or free-standing."""

    def __init__(self, rng: np.random.Generator, room: Room) -> None:
        self.rng, self.room = rng, room
        self.footprints: list[tuple[float, float, float, float]] = []

    def _free(self, x0: float, z0: float, x1: float, z1: float) -> bool:
        width, _, depth = self.room.size
        if x0 < 0 or z0 < 0 or x1 > width or z1 > depth:
            return False
        return all(
            x1 <= a0 or x0 >= a1 or z1 <= b0 or z0 >= b1 for a0, b0, a1, b1 in self.footprints
        )

    def against_wall(self, along: float, across: float) -> tuple | None:
        """A free footprint (x0, z0, x1, z1, wall) of ``along`` x ``across`` metres touching a
        wall, its long side along the wall; None after a few failed tries."""
        width, _, depth = self.room.size
        for _ in range(12):
            axis, side = int(self.rng.integers(2)) * 2, int(self.rng.integers(2))
            length = depth if axis == 0 else width
            if along > length - 0.1:
                continue
            start = float(self.rng.uniform(0.05, length - along - 0.05))
            if axis == 0:  # a wall facing x: the footprint runs along z
                x0 = 0.0 if side == 0 else width - across
                box = (x0, start, x0 + across, start + along)
            else:
                z0 = 0.0 if side == 0 else depth - across
                box = (start, z0, start + along, z0 + across)
            if self._free(*box):
                self.footprints.append(box)
                return (*box, WALL_SURFACES[(axis, side)])
        return None

    def free_standing(self, size_x: float, size_z: float, margin: float = 0.6) -> tuple | None:
        """A free footprint (x0, z0, x1, z1) at least ``margin`` from the walls."""
        width, _, depth = self.room.size
        if width - 2 * margin < size_x or depth - 2 * margin < size_z:
            return None
        for _ in range(12):
            x0 = float(self.rng.uniform(margin, width - margin - size_x))
            z0 = float(self.rng.uniform(margin, depth - margin - size_z))
            box = (x0, z0, x0 + size_x, z0 + size_z)
            if self._free(*box):
                self.footprints.append(box)
                return box
        return None


def _wall_normal_axis(wall: int) -> tuple[int, int]:
    return next(key for key, value in WALL_SURFACES.items() if value == wall)


def _back_box(x0, z0, x1, z1, wall, y0, y1, thickness) -> tuple[tuple, tuple]:
    """The slab of a footprint that touches its wall (headboard, sofa back)."""
    axis, side = _wall_normal_axis(wall)
    if axis == 0:
        xa, xb = (x0, x0 + thickness) if side == 0 else (x1 - thickness, x1)
        return (xa, y0, z0), (xb, y1, z1)
    za, zb = (z0, z0 + thickness) if side == 0 else (z1 - thickness, z1)
    return (x0, y0, za), (x1, y1, zb)


def sample_room(rng: np.random.Generator) -> Room:
    """A random furnished room: every NYUv2 class can appear, walls and floor always do."""
    size = (
        float(rng.uniform(3.0, 6.0)),
        float(rng.uniform(2.4, 3.0)),
        float(rng.uniform(3.5, 7.0)),
    )
    room = Room(
        size=size,
        wall_colour=_colour(rng, WALL_COLOURS, 0.06),
        floor_colour=_colour(rng, FLOOR_COLOURS, 0.1),
        ceiling_colour=_colour(rng, np.array([[0.93, 0.93, 0.91]]), 0.03),
        light=(float(rng.uniform(-0.6, 0.6)), -1.0, float(rng.uniform(-0.6, 0.6))),
        ambient=float(rng.uniform(0.35, 0.55)),
    )
    place, boxes = _Placer(rng, room), room.boxes
    if rng.random() < 0.4:
        spot = place.against_wall(float(rng.uniform(1.9, 2.1)), float(rng.uniform(1.3, 1.8)))
        if spot:
            x0, z0, x1, z1, wall = spot
            boxes.append(
                Box(
                    (x0, 0, z0),
                    (x1, rng.uniform(0.45, 0.6), z1),
                    BED,
                    _colour(rng, FABRIC_COLOURS),
                    "fabric",
                )
            )
            lo, hi = _back_box(x0, z0, x1, z1, wall, 0.0, rng.uniform(0.9, 1.2), 0.08)
            boxes.append(Box(lo, hi, BED, _colour(rng, FURNITURE_COLOURS), "wood"))
    if rng.random() < 0.5:
        spot = place.against_wall(float(rng.uniform(1.6, 2.2)), float(rng.uniform(0.8, 0.95)))
        if spot:
            x0, z0, x1, z1, wall = spot
            fabric = _colour(rng, FABRIC_COLOURS)
            boxes.append(Box((x0, 0, z0), (x1, rng.uniform(0.4, 0.48), z1), SOFA, fabric, "fabric"))
            lo, hi = _back_box(x0, z0, x1, z1, wall, 0.0, rng.uniform(0.8, 0.95), 0.22)
            boxes.append(Box(lo, hi, SOFA, fabric, "fabric"))
    for _ in range(int(rng.integers(1, 4))):  # cabinets, shelves, dressers
        spot = place.against_wall(float(rng.uniform(0.5, 1.4)), float(rng.uniform(0.35, 0.6)))
        if spot:
            x0, z0, x1, z1, wall = spot
            top = float(rng.uniform(0.7, 2.0))
            boxes.append(
                Box((x0, 0, z0), (x1, top, z1), FURNITURE, _colour(rng, FURNITURE_COLOURS), "wood")
            )
            if rng.random() < 0.5:  # a row of books on top
                along_x = _wall_normal_axis(wall)[0] == 2
                inset = 0.05
                lo = (x0 + inset, top, z0 + inset)
                hi = (x1 - inset, top + rng.uniform(0.18, 0.3), z1 - inset)
                boxes.append(
                    Box(lo, hi, BOOKS, (0.5, 0.4, 0.35), "books_x" if along_x else "books_z")
                )
            elif rng.random() < 0.5:
                cx, cz, s = (x0 + x1) / 2, (z0 + z1) / 2, rng.uniform(0.1, 0.2)
                boxes.append(
                    Box(
                        (cx - s, top, cz - s),
                        (cx + s, top + rng.uniform(0.1, 0.35), cz + s),
                        OBJECTS,
                        _colour(rng, FABRIC_COLOURS, 0.3),
                    )
                )
    if rng.random() < 0.65:
        sx, sz = float(rng.uniform(0.8, 1.6)), float(rng.uniform(0.6, 1.0))
        spot = place.free_standing(sx + 0.9, sz + 0.9)
        if spot:  # room for chairs around the table
            x0, z0, x1, z1 = spot[0] + 0.45, spot[1] + 0.45, spot[2] - 0.45, spot[3] - 0.45
            top, wood = float(rng.uniform(0.7, 0.78)), _colour(rng, FURNITURE_COLOURS)
            boxes.append(Box((x0, top - 0.04, z0), (x1, top, z1), TABLE, wood, "wood"))
            for lx, lz in ((x0, z0), (x1 - 0.05, z0), (x0, z1 - 0.05), (x1 - 0.05, z1 - 0.05)):
                boxes.append(
                    Box((lx, 0, lz), (lx + 0.05, top - 0.04, lz + 0.05), TABLE, wood, "wood")
                )
            if rng.random() < 0.6:
                cx, cz = rng.uniform(x0 + 0.1, x1 - 0.3), rng.uniform(z0 + 0.1, z1 - 0.3)
                boxes.append(
                    Box(
                        (cx, top, cz),
                        (
                            cx + rng.uniform(0.1, 0.25),
                            top + rng.uniform(0.05, 0.3),
                            cz + rng.uniform(0.1, 0.25),
                        ),
                        OBJECTS,
                        _colour(rng, FABRIC_COLOURS, 0.3),
                    )
                )
            chair = _colour(rng, FURNITURE_COLOURS)
            for side in rng.permutation(4)[: int(rng.integers(0, 4))]:
                _add_chair(boxes, side, (x0, z0, x1, z1), chair, rng)
    for _ in range(int(rng.integers(0, 4))):  # clutter on the floor, sometimes unlabelled
        s = float(rng.uniform(0.15, 0.45))
        spot = place.free_standing(s, s, margin=0.1)
        if spot:
            label = -1 if rng.random() < 0.25 else OBJECTS
            boxes.append(
                Box(
                    (spot[0], 0, spot[1]),
                    (spot[2], rng.uniform(0.1, 0.5), spot[3]),
                    label,
                    _colour(rng, FABRIC_COLOURS, 0.3),
                )
            )
    _add_decals(rng, room)
    return room


def _add_chair(boxes: list[Box], side: int, table: tuple, colour: tuple, rng) -> None:
    x0, z0, x1, z1 = table
    s, seat = 0.42, float(rng.uniform(0.42, 0.48))
    cx = float(rng.uniform(x0, max(x0, x1 - s)))
    cz = float(rng.uniform(z0, max(z0, z1 - s)))
    # Chairs stand just outside the table edge, their back away from it.
    if side == 0:
        lo, back = (cx, z0 - s - 0.03), ((cx, z0 - s - 0.03), (cx + s, z0 - s + 0.03))
    elif side == 1:
        lo, back = (cx, z1 + 0.03), ((cx, z1 + s - 0.03), (cx + s, z1 + s + 0.03))
    elif side == 2:
        lo, back = (x0 - s - 0.03, cz), ((x0 - s - 0.03, cz), (x0 - s + 0.03, cz + s))
    else:
        lo, back = (x1 + 0.03, cz), ((x1 + s - 0.03, cz), (x1 + s + 0.03, cz + s))
    boxes.append(
        Box((lo[0], seat - 0.05, lo[1]), (lo[0] + s, seat, lo[1] + s), CHAIR, colour, "wood")
    )
    boxes.append(
        Box(
            (lo[0] + 0.1, 0, lo[1] + 0.1),
            (lo[0] + s - 0.1, seat - 0.05, lo[1] + s - 0.1),
            CHAIR,
            colour,
            "wood",
        )
    )
    boxes.append(
        Box(
            (back[0][0], seat, back[0][1]),
            (back[1][0], seat + 0.45, back[1][1]),
            CHAIR,
            colour,
            "wood",
        )
    )


def _add_decals(rng: np.random.Generator, room: Room) -> None:
    width, height, depth = room.size
    taken: dict[int, list[tuple[float, float]]] = {wall: [] for wall in WALL_SURFACES.values()}

    def add(label: int, w: float, h: float, bottom: float, colour: tuple, valid: bool) -> None:
        for _ in range(6):
            wall = int(rng.choice(list(WALL_SURFACES.values())))
            axis, _ = _wall_normal_axis(wall)
            length = depth if axis == 0 else width
            if w > length - 0.4:
                continue
            u0 = float(rng.uniform(0.2, length - w - 0.2))
            if all(u0 + w + 0.1 <= a or u0 >= b + 0.1 for a, b in taken[wall]):
                taken[wall].append((u0, u0 + w))
                top = min(bottom + h, height - 0.1)
                room.decals.append(Decal(wall, (u0, u0 + w), (bottom, top), label, colour, valid))
                return

    for _ in range(int(rng.integers(0, 3))):
        w = float(rng.uniform(0.8, 1.6))
        add(
            WINDOW,
            w,
            float(rng.uniform(1.0, 1.5)),
            float(rng.uniform(0.8, 1.0)),
            (0.95, 0.97, 1.0),
            False,
        )
    for _ in range(int(rng.integers(0, 4))):
        w = float(rng.uniform(0.3, 1.0))
        colour = tuple(float(c) for c in rng.uniform(0.1, 0.9, 3))
        add(
            PAINTING,
            w,
            w * float(rng.uniform(0.6, 1.3)),
            float(rng.uniform(1.2, 1.6)),
            colour,
            True,
        )
    if rng.random() < 0.5:
        w = float(rng.uniform(0.8, 1.3))
        add(
            TV,
            w,
            w * 9 / 16,
            float(rng.uniform(0.9, 1.3)),
            (0.05, 0.05, 0.07),
            bool(rng.random() < 0.5),
        )
