"""Object shapes: each painter draws one kind of object (car, person, tree, sign...).

Painters get metric coordinates inside the billboard: xm from its left edge, ym down from its
top, and return (mask, rgb).
"""

from __future__ import annotations

import numpy as np

from mtlscene.data.cityscapes.synthetic.texture import (
    CAR_COLOURS,
    CLOTHES,
    VEHICLE_COLOURS,
    jitter,
    pick,
)
from mtlscene.data.procedural import Noise

# Painters get metric coordinates inside the billboard: xm from its left edge, ym down from
# its top, and return (mask, rgb).


def _ellipse(a: np.ndarray, b: np.ndarray, ca: float, cb: float, ra: float, rb: float):
    return ((a - ca) / ra) ** 2 + ((b - cb) / rb) ** 2 <= 1


def _segment_distance(x, y, x0, y0, x1, y1):
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0, 1)
    return np.hypot(x - (x0 + t * dx), y - (y0 + t * dy))


def car_painter(rng, width, height, front: bool):
    body = pick(rng, CAR_COLOURS, 0.1)
    glass = jitter(rng, np.array([0.12, 0.14, 0.17], np.float32), 0.3)
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


def box_vehicle_painter(rng, width, height, kind: str):
    body = pick(rng, VEHICLE_COLOURS, 0.1)
    glass = jitter(rng, np.array([0.1, 0.12, 0.15], np.float32), 0.3)
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


def person_painter(rng, width, height, helmet: bool = False):
    skin = jitter(rng, np.array([0.78, 0.6, 0.48], np.float32), 0.25)
    hair = pick(rng, CLOTHES[:2], 0.3)
    if helmet:
        hair = pick(rng, VEHICLE_COLOURS, 0.1)
    shirt, pants = pick(rng, CLOTHES, 0.2), pick(rng, CLOTHES[:5], 0.2)
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


def two_wheeler_painter(rng, width, height, motor: bool):
    frame = pick(rng, CAR_COLOURS if motor else CLOTHES, 0.15)
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


def tree_painter(rng, noise: Noise, width, height, trunk_height):
    leaf = jitter(rng, np.array([0.22, 0.34, 0.12], np.float32), 0.25)
    bark = jitter(rng, np.array([0.3, 0.22, 0.15], np.float32), 0.2)
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


def flat_painter(colour: np.ndarray, shape: str = "box", width: float = 1, height: float = 1):
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


def traffic_light_painter(rng, width, height):
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


def pole_painter(colour):
    def paint(xm, ym):
        rgb = np.empty(xm.shape + (3,), np.float32)
        rgb[...] = colour
        return np.ones(xm.shape, bool), rgb

    return paint


def lamp_painter(colour, width, arm):
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
