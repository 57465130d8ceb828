"""What a room is made of: walls, floor and ceiling, box furniture and flat wall decals.

World coordinates in metres: the room is the box ``[0, width] x [0, height] x [0, depth]``
(x, y up, z). Furniture is made of axis-aligned boxes standing in it; paintings, windows
and televisions are rectangles on the walls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mtlscene.data.nyuv2.layout import NYUV2_CLASS_NAMES

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
