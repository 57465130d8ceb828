"""Ray-casting renderer: ground, planes, sky and billboards into image, labels and depth."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mtlscene.data.cityscapes.synthetic.camera import Camera
from mtlscene.data.cityscapes.synthetic.layout import (
    EGO,
    ROAD,
    SIDEWALK,
    SKY,
    TERRAIN,
    Billboard,
    Plane,
    Street,
    sample_billboards,
    sample_planes,
    sample_street,
)
from mtlscene.data.cityscapes.synthetic.texture import CAR_COLOURS, jitter, pick
from mtlscene.data.procedural import Noise


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
        disparity_std: float32 HxW per-pixel std of the noise added to ``disparity`` (only
            with the writer's ``disparity_noise`` option; see ``disparity_noise``), else None.
    """

    image: np.ndarray
    label_ids: np.ndarray
    instance_ids: np.ndarray
    disparity: np.ndarray
    disparity_valid: np.ndarray
    camera: dict
    disparity_std: np.ndarray | None = None


class Renderer:
    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        self.rng = rng
        self.height, self.width = height, width
        self.cam = Camera.at_resolution(height, width, round(float(rng.uniform(0.02, 0.06)), 4))
        self.cos, self.sin = math.cos(self.cam.pitch), math.sin(self.cam.pitch)
        self.xn = ((np.arange(width) - self.cam.u0) / self.cam.fx).astype(np.float32)
        self.yn = ((np.arange(height) - self.cam.v0) / self.cam.fy).astype(np.float32)
        self.rgb = np.zeros((height, width, 3), np.float32)
        self.label = np.zeros((height, width), np.uint8)
        self.instance = np.zeros((height, width), np.int32)
        self.depth = np.full((height, width), np.inf, np.float32)
        self.noise = Noise(rng)
        self.sunny = rng.random() < 0.6
        self.sun_side = -1 if rng.random() < 0.5 else 1
        self.horizon_colour = jitter(rng, np.array([0.85, 0.87, 0.9], np.float32), 0.05)

    # Background: ground, planes, sky -------------------------------------------------------
    def background(self, street: Street, planes: list[Plane]) -> None:
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

    def _top(self, plane: Plane, along: np.ndarray) -> np.ndarray | float:
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

    def _paint_ground(self, street: Street, mask: np.ndarray) -> None:
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
        road_c = jitter(rng, np.array([0.34, 0.34, 0.36], np.float32), 0.15)
        walk_c = pick(
            rng,
            np.array([[0.58, 0.56, 0.53], [0.55, 0.45, 0.42], [0.5, 0.5, 0.52]], np.float32),
            0.1,
        )
        terrain_c = jitter(rng, np.array([0.38, 0.4, 0.22], np.float32), 0.15)
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

    def _paint_plane(self, plane: Plane, mask: np.ndarray) -> None:
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
            zenith = jitter(rng, np.array([0.35, 0.55, 0.85], np.float32), 0.1)
        else:
            zenith = jitter(rng, np.array([0.7, 0.72, 0.75], np.float32), 0.08)
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
    def billboards(self, things: list[Billboard]) -> None:
        counters: dict[int, int] = {}
        for thing in sorted(things, key=lambda b: -b.z):  # painter's order: far to near
            self._billboard(thing, counters)

    def _billboard(self, thing: Billboard, counters: dict[int, int]) -> None:
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
        paint = pick(rng, CAR_COLOURS[[0, 1, 2, 3, 6]], 0.1)
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
        gain = rng.uniform(0.65, 1.25) * jitter(rng, np.ones(3, np.float32), 0.08)
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
        The scene's arrays and camera JSON (intrinsics scaled to ``height`` x ``width``).
    """
    if height < 8 or width < 8:
        raise ValueError(f"synthetic scenes need at least 8x8 pixels, got {height}x{width}")
    renderer = Renderer(rng, height, width)
    street = sample_street(rng)
    renderer.background(street, sample_planes(rng, street))
    renderer.billboards(sample_billboards(rng, street, renderer.noise))
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
