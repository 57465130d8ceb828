"""The synthetic indoor camera: a pinhole with Kinect-like intrinsics and a pose in the room.

Frames: the world is right-handed with ``y`` up (the floor is ``y = 0``); the camera frame
is OpenCV's, ``x`` to the right of the image (growing column), ``y`` down (growing row),
``z`` forward along the optical axis. Depth is the camera ``z`` of the hit point (what a
Kinect measures), not the length of the ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# NYUv2's Kinect colour camera at 640x480 (the mtan files are these frames resized to
# 288x384, so the intrinsics scale with the working size).
KINECT_SIZE = (480, 640)
KINECT_FOCAL = (519.47, 518.86)  # (fy, fx)


@dataclass(frozen=True)
class IndoorCamera:
    """A pinhole camera at ``position`` whose axes (in world coordinates) are ``rotation``'s
    columns: camera x (image right), camera y (image down), camera z (forward).

    Pixel ``(row, col)`` looks through its centre ``(col + 0.5, row + 0.5)``; the principal
    point is the image centre.
    """

    height: int
    width: int
    fx: float
    fy: float
    position: np.ndarray
    rotation: np.ndarray

    @classmethod
    def looking(
        cls,
        height: int,
        width: int,
        position: tuple[float, float, float] | np.ndarray,
        yaw: float,
        pitch: float,
        roll: float = 0.0,
    ) -> IndoorCamera:
        """A camera at ``position`` turned by ``yaw`` about the world up axis (0 looks along
        world +z), tilted by ``pitch`` (negative looks down, |pitch| < pi/2) and rolled by
        ``roll`` about its optical axis, with Kinect intrinsics scaled to ``height x width``."""
        forward = np.array(
            [math.cos(pitch) * math.sin(yaw), math.sin(pitch), math.cos(pitch) * math.cos(yaw)]
        )
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        cos, sin = math.cos(roll), math.sin(roll)
        right, down = cos * right + sin * down, -sin * right + cos * down
        return cls(
            height=height,
            width=width,
            fx=KINECT_FOCAL[1] * width / KINECT_SIZE[1],
            fy=KINECT_FOCAL[0] * height / KINECT_SIZE[0],
            position=np.asarray(position, np.float64),
            rotation=np.stack([right, down, forward], axis=1),
        )

    def ray_directions(self) -> np.ndarray:
        """World directions (H*W x 3, row-major) of every pixel's ray, scaled so that their
        camera z is 1: the distance along such a ray is the pixel's depth."""
        cols = (np.arange(self.width) + 0.5 - self.width / 2) / self.fx
        rows = (np.arange(self.height) + 0.5 - self.height / 2) / self.fy
        x, y = np.meshgrid(cols, rows)
        r = self.rotation
        # Written per component: a (N x 3) @ (3 x 3) product is slow in numpy.
        return np.stack([r[a, 0] * x + r[a, 1] * y + r[a, 2] for a in range(3)], axis=-1).reshape(
            -1, 3
        )

    def to_camera(self, vectors: np.ndarray) -> np.ndarray:
        """World direction vectors (... x 3) in camera coordinates."""
        r = self.rotation
        return np.stack(
            [sum(vectors[..., a] * r[a, i] for a in range(3)) for i in range(3)], axis=-1
        )
