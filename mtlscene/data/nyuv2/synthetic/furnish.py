"""Random furnished rooms: furniture placed without overlaps, decals on the walls.

Every NYUv2 class can appear: beds (mattress and headboard), sofas (seat and back),
cabinets with books or objects on top, tables on four legs with chairs around them,
clutter on the floor (a quarter of it unlabelled), and paintings, windows and televisions
on the walls. Walls and floor are always there.
"""

from __future__ import annotations

import numpy as np

from mtlscene.data.nyuv2.synthetic.room import (
    BED,
    BOOKS,
    CHAIR,
    FURNITURE,
    OBJECTS,
    PAINTING,
    SOFA,
    TABLE,
    TV,
    WALL_SURFACES,
    WINDOW,
    Box,
    Decal,
    Room,
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

Footprint = tuple[float, float, float, float]
"""(x0, z0, x1, z1) on the floor."""


def sample_room(rng: np.random.Generator) -> Room:
    """A random furnished room, 3-6 m wide, 3.5-7 m deep and 2.4-3 m high."""
    room = Room(
        size=(
            float(rng.uniform(3.0, 6.0)),
            float(rng.uniform(2.4, 3.0)),
            float(rng.uniform(3.5, 7.0)),
        ),
        wall_colour=_colour(rng, WALL_COLOURS, 0.06),
        floor_colour=_colour(rng, FLOOR_COLOURS, 0.1),
        ceiling_colour=_colour(rng, np.array([[0.93, 0.93, 0.91]]), 0.03),
        light=(float(rng.uniform(-0.6, 0.6)), -1.0, float(rng.uniform(-0.6, 0.6))),
        ambient=float(rng.uniform(0.35, 0.55)),
    )
    place = _Placer(rng, room)
    if rng.random() < 0.4:
        _add_bed(rng, room, place)
    if rng.random() < 0.5:
        _add_sofa(rng, room, place)
    for _ in range(int(rng.integers(1, 4))):
        _add_cabinet(rng, room, place)
    if rng.random() < 0.65:
        _add_dining_set(rng, room, place)
    for _ in range(int(rng.integers(0, 4))):
        _add_clutter(rng, room, place)
    _add_decals(rng, room)
    return room


def _colour(rng: np.random.Generator, palette: np.ndarray, amount: float = 0.12) -> tuple:
    base = palette[rng.integers(len(palette))] * rng.uniform(1 - amount, 1 + amount, 3)
    return tuple(float(c) for c in np.clip(base, 0, 1))


def _box(lo, hi, label: int, colour: tuple, pattern: str = "plain") -> Box:
    return Box(tuple(float(v) for v in lo), tuple(float(v) for v in hi), label, colour, pattern)


def _wall_axis_side(wall: int) -> tuple[int, int]:
    return next(key for key, value in WALL_SURFACES.items() if value == wall)


class _Placer:
    """Finds free floor footprints, against a wall or free-standing, without overlaps."""

    def __init__(self, rng: np.random.Generator, room: Room) -> None:
        self.rng, self.room = rng, room
        self.taken: list[Footprint] = []

    def _free(self, x0: float, z0: float, x1: float, z1: float) -> bool:
        width, _, depth = self.room.size
        if x0 < 0 or z0 < 0 or x1 > width or z1 > depth:
            return False
        return all(x1 <= a0 or x0 >= a1 or z1 <= b0 or z0 >= b1 for a0, b0, a1, b1 in self.taken)

    def against_wall(self, along: float, across: float) -> tuple[Footprint, int] | None:
        """A free footprint of ``along`` x ``across`` metres, its long side on a wall, and
        that wall; None after a few failed tries."""
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
                self.taken.append(box)
                return box, WALL_SURFACES[(axis, side)]
        return None

    def free_standing(self, size_x: float, size_z: float, margin: float = 0.6) -> Footprint | None:
        """A free footprint at least ``margin`` from the walls; None after a few tries."""
        width, _, depth = self.room.size
        if width - 2 * margin < size_x or depth - 2 * margin < size_z:
            return None
        for _ in range(12):
            x0 = float(self.rng.uniform(margin, width - margin - size_x))
            z0 = float(self.rng.uniform(margin, depth - margin - size_z))
            box = (x0, z0, x0 + size_x, z0 + size_z)
            if self._free(*box):
                self.taken.append(box)
                return box
        return None


def _back_slab(spot: Footprint, wall: int, top: float, thickness: float) -> tuple[tuple, tuple]:
    """The slab of a footprint along its wall, from the floor to ``top`` (headboard, back)."""
    x0, z0, x1, z1 = spot
    axis, side = _wall_axis_side(wall)
    if axis == 0:
        xa, xb = (x0, x0 + thickness) if side == 0 else (x1 - thickness, x1)
        return (xa, 0.0, z0), (xb, top, z1)
    za, zb = (z0, z0 + thickness) if side == 0 else (z1 - thickness, z1)
    return (x0, 0.0, za), (x1, top, zb)


def _add_bed(rng: np.random.Generator, room: Room, place: _Placer) -> None:
    found = place.against_wall(float(rng.uniform(1.9, 2.1)), float(rng.uniform(1.3, 1.8)))
    if found:
        (x0, z0, x1, z1), wall = found
        mattress = _colour(rng, FABRIC_COLOURS)
        room.boxes.append(
            _box((x0, 0, z0), (x1, rng.uniform(0.45, 0.6), z1), BED, mattress, "fabric")
        )
        lo, hi = _back_slab((x0, z0, x1, z1), wall, rng.uniform(0.9, 1.2), 0.08)
        room.boxes.append(_box(lo, hi, BED, _colour(rng, FURNITURE_COLOURS), "wood"))


def _add_sofa(rng: np.random.Generator, room: Room, place: _Placer) -> None:
    found = place.against_wall(float(rng.uniform(1.6, 2.2)), float(rng.uniform(0.8, 0.95)))
    if found:
        (x0, z0, x1, z1), wall = found
        fabric = _colour(rng, FABRIC_COLOURS)
        room.boxes.append(
            _box((x0, 0, z0), (x1, rng.uniform(0.4, 0.48), z1), SOFA, fabric, "fabric")
        )
        lo, hi = _back_slab((x0, z0, x1, z1), wall, rng.uniform(0.8, 0.95), 0.22)
        room.boxes.append(_box(lo, hi, SOFA, fabric, "fabric"))


def _add_cabinet(rng: np.random.Generator, room: Room, place: _Placer) -> None:
    """A cabinet, shelf or dresser against a wall, with books or an object on top."""
    found = place.against_wall(float(rng.uniform(0.5, 1.4)), float(rng.uniform(0.35, 0.6)))
    if not found:
        return
    (x0, z0, x1, z1), wall = found
    top = float(rng.uniform(0.7, 2.0))
    room.boxes.append(
        _box((x0, 0, z0), (x1, top, z1), FURNITURE, _colour(rng, FURNITURE_COLOURS), "wood")
    )
    if rng.random() < 0.5:  # a row of books, its spines along the wall
        along_x = _wall_axis_side(wall)[0] == 2
        lo = (x0 + 0.05, top, z0 + 0.05)
        hi = (x1 - 0.05, top + rng.uniform(0.18, 0.3), z1 - 0.05)
        room.boxes.append(
            _box(lo, hi, BOOKS, (0.5, 0.4, 0.35), "books_x" if along_x else "books_z")
        )
    elif rng.random() < 0.5:
        cx, cz, s = (x0 + x1) / 2, (z0 + z1) / 2, rng.uniform(0.1, 0.2)
        lo, hi = (cx - s, top, cz - s), (cx + s, top + rng.uniform(0.1, 0.35), cz + s)
        room.boxes.append(_box(lo, hi, OBJECTS, _colour(rng, FABRIC_COLOURS, 0.3)))


def _add_dining_set(rng: np.random.Generator, room: Room, place: _Placer) -> None:
    """A table on four legs, maybe an object on it, and up to three chairs around it."""
    size_x, size_z = float(rng.uniform(0.8, 1.6)), float(rng.uniform(0.6, 1.0))
    spot = place.free_standing(size_x + 0.9, size_z + 0.9)  # room for the chairs
    if not spot:
        return
    x0, z0, x1, z1 = spot[0] + 0.45, spot[1] + 0.45, spot[2] - 0.45, spot[3] - 0.45
    top, wood = float(rng.uniform(0.7, 0.78)), _colour(rng, FURNITURE_COLOURS)
    room.boxes.append(_box((x0, top - 0.04, z0), (x1, top, z1), TABLE, wood, "wood"))
    for lx, lz in ((x0, z0), (x1 - 0.05, z0), (x0, z1 - 0.05), (x1 - 0.05, z1 - 0.05)):
        room.boxes.append(
            _box((lx, 0, lz), (lx + 0.05, top - 0.04, lz + 0.05), TABLE, wood, "wood")
        )
    if rng.random() < 0.6:
        cx, cz = rng.uniform(x0 + 0.1, x1 - 0.3), rng.uniform(z0 + 0.1, z1 - 0.3)
        size = rng.uniform((0.1, 0.05, 0.1), (0.25, 0.3, 0.25))
        hi = (cx + size[0], top + size[1], cz + size[2])
        room.boxes.append(_box((cx, top, cz), hi, OBJECTS, _colour(rng, FABRIC_COLOURS, 0.3)))
    colour = _colour(rng, FURNITURE_COLOURS)
    for side in rng.permutation(4)[: int(rng.integers(0, 4))]:
        _add_chair(rng, room, int(side), (x0, z0, x1, z1), colour)


def _add_chair(
    rng: np.random.Generator, room: Room, side: int, table: Footprint, colour: tuple
) -> None:
    """A chair (seat, base, back) just outside one edge of the table, its back away from it."""
    x0, z0, x1, z1 = table
    s, seat = 0.42, float(rng.uniform(0.42, 0.48))
    cx = float(rng.uniform(x0, max(x0, x1 - s)))
    cz = float(rng.uniform(z0, max(z0, z1 - s)))
    if side == 0:
        corner, back = (cx, z0 - s - 0.03), ((cx, z0 - s - 0.03), (cx + s, z0 - s + 0.03))
    elif side == 1:
        corner, back = (cx, z1 + 0.03), ((cx, z1 + s - 0.03), (cx + s, z1 + s + 0.03))
    elif side == 2:
        corner, back = (x0 - s - 0.03, cz), ((x0 - s - 0.03, cz), (x0 - s + 0.03, cz + s))
    else:
        corner, back = (x1 + 0.03, cz), ((x1 + s - 0.03, cz), (x1 + s + 0.03, cz + s))
    a, b = corner
    room.boxes += [
        _box((a, seat - 0.05, b), (a + s, seat, b + s), CHAIR, colour, "wood"),
        _box((a + 0.1, 0, b + 0.1), (a + s - 0.1, seat - 0.05, b + s - 0.1), CHAIR, colour, "wood"),
        _box(
            (back[0][0], seat, back[0][1]),
            (back[1][0], seat + 0.45, back[1][1]),
            CHAIR,
            colour,
            "wood",
        ),
    ]


def _add_clutter(rng: np.random.Generator, room: Room, place: _Placer) -> None:
    """A box on the floor: an object, or (one time in four) something nobody labelled."""
    s = float(rng.uniform(0.15, 0.45))
    spot = place.free_standing(s, s, margin=0.1)
    if spot:
        label = -1 if rng.random() < 0.25 else OBJECTS
        hi = (spot[2], rng.uniform(0.1, 0.5), spot[3])
        room.boxes.append(_box((spot[0], 0, spot[1]), hi, label, _colour(rng, FABRIC_COLOURS, 0.3)))


def _add_decals(rng: np.random.Generator, room: Room) -> None:
    """0-2 windows (no depth: glass), 0-3 paintings and maybe a TV (no depth half the
    time: a black screen), each on a random wall without overlapping the others."""
    width, height, depth = room.size
    taken: dict[int, list[tuple[float, float]]] = {wall: [] for wall in WALL_SURFACES.values()}

    def add(label: int, w: float, h: float, bottom: float, colour: tuple, valid: bool) -> None:
        for _ in range(6):
            wall = int(rng.choice(list(WALL_SURFACES.values())))
            length = depth if _wall_axis_side(wall)[0] == 0 else width
            if w > length - 0.4:
                continue
            u0 = float(rng.uniform(0.2, length - w - 0.2))
            if all(u0 + w + 0.1 <= a or u0 >= b + 0.1 for a, b in taken[wall]):
                taken[wall].append((u0, u0 + w))
                top = min(bottom + h, height - 0.1)
                room.decals.append(Decal(wall, (u0, u0 + w), (bottom, top), label, colour, valid))
                return

    for _ in range(int(rng.integers(0, 3))):
        w, h, bottom = rng.uniform((0.8, 1.0, 0.8), (1.6, 1.5, 1.0))
        add(WINDOW, float(w), float(h), float(bottom), (0.95, 0.97, 1.0), False)
    for _ in range(int(rng.integers(0, 4))):
        w = float(rng.uniform(0.3, 1.0))
        colour = tuple(float(c) for c in rng.uniform(0.1, 0.9, 3))
        h, bottom = w * float(rng.uniform(0.6, 1.3)), float(rng.uniform(1.2, 1.6))
        add(PAINTING, w, h, bottom, colour, True)
    if rng.random() < 0.5:
        w = float(rng.uniform(0.8, 1.3))
        bottom, valid = float(rng.uniform(0.9, 1.3)), bool(rng.random() < 0.5)
        add(TV, w, w * 9 / 16, bottom, (0.05, 0.05, 0.07), valid)
