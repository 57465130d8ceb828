"""The synthetic stereo camera: CityScapes' calibration scaled to the generated resolution."""

from __future__ import annotations

import math
from dataclasses import dataclass

# CityScapes' calibration at 1024x2048 (a typical camera file) and the stereo rig.
FULL_SIZE = (1024, 2048)
FULL_INTRINSIC = {"fx": 2262.52, "fy": 2265.3017905988554, "u0": 1096.98, "v0": 513.137}
BASELINE = 0.209313
CAMERA_HEIGHT = 1.22


@dataclass(frozen=True)
class Camera:
    fx: float
    fy: float
    u0: float
    v0: float
    pitch: float
    height: float = CAMERA_HEIGHT
    baseline: float = BASELINE

    @classmethod
    def at_resolution(cls, height: int, width: int, pitch: float) -> Camera:
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
