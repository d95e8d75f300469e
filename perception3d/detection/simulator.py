"""A spinning-lidar scene simulator that writes the KITTI layout, so that detection labels are exact.

Each frame is a street-like scene on sloped, undulating ground: cars, pedestrians and cyclists built from
several primitives each (car body, cabin, wheels; legs, torso, arms, head; bicycle wheels, frame and rider)
with sizes drawn per object, parked rows that occlude one another, and clutter (buildings, walls, poles,
trees, bushes, bins). A spinning lidar (32/64/128 beams, an elevation range, per-beam jitter) is ray-cast
with open3d's `RaycastingScene`; returns get range noise, random and intensity-dependent dropout and an
intensity from the surface reflectivity, the incidence angle and the range.

Layout written (KITTI object benchmark):
    training/velodyne/NNNNNN.bin   float32 (N, 4): x, y, z, intensity; lidar frame (x forward, y left, z up)
    training/label_2/NNNNNN.txt    type trunc occ alpha x1 y1 x2 y2 h w l x y z rotation_y (camera frame)
    training/calib/NNNNNN.txt      P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo
    ImageSets/train.txt, ImageSets/val.txt

Labels cover the full 360 degrees within `label_range` (there is no camera image; the 2D box is the
projection into the synthetic camera P2 when in front of it, else -1). `truncated` is the fraction of the
box's BEV footprint outside `label_range`; `occluded` (0/1/2) comes from the fraction of the lidar rays that
would hit the object alone but hit something else first (<20% / <50% / more). Objects with no lidar return
are written as `DontCare`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "LidarConfig",
    "SceneConfig",
    "SimulatedFrame",
    "simulate_frame",
    "write_kitti_frame",
    "make_lidar_scenes",
    "CLASS_NAMES",
]

CLASS_NAMES = ("Car", "Pedestrian", "Cyclist")

# the camera of the synthetic calib: KITTI-like intrinsics, camera at the lidar origin
_P2 = np.array([[721.5377, 0.0, 609.5593, 0.0], [0.0, 721.5377, 172.854, 0.0], [0.0, 0.0, 1.0, 0.0]])
# lidar (x fwd, y left, z up) -> camera (x right, y down, z fwd)
_TR_VELO_TO_CAM = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
_IMAGE_SIZE = (1242, 375)


@dataclass(frozen=True)
class LidarConfig:
    """A spinning lidar.

    Attributes:
        beams: number of lasers (32, 64, 128).
        elevation: (lowest, highest) beam elevation in degrees; beams are spread linearly between them.
        azimuth_steps: firings per revolution.
        height: sensor height above the ground under it, metres.
        max_range: metres.
        range_noise: standard deviation of the range noise, metres.
        dropout: probability that a return is lost at random.
        beam_jitter: standard deviation of each beam's elevation error, degrees.
    """

    beams: int = 64
    elevation: tuple[float, float] = (-24.9, 2.0)
    azimuth_steps: int = 1024
    height: float = 1.73
    max_range: float = 100.0
    range_noise: float = 0.02
    dropout: float = 0.05
    beam_jitter: float = 0.05


@dataclass(frozen=True)
class SceneConfig:
    """How crowded a scene is. Counts are drawn uniformly in the closed ranges."""

    cars: tuple[int, int] = (6, 16)
    pedestrians: tuple[int, int] = (3, 10)
    cyclists: tuple[int, int] = (2, 6)
    buildings: tuple[int, int] = (3, 8)
    poles: tuple[int, int] = (8, 25)
    trees: tuple[int, int] = (4, 14)
    bushes: tuple[int, int] = (3, 10)
    object_range: float = 38.0
    label_range: float = 40.0
    max_slope_deg: float = 3.0


@dataclass
class SimulatedFrame:
    """One simulated sweep and its labels (lidar frame, metres and radians)."""

    points: np.ndarray  # (N, 4) float32 x, y, z, intensity
    boxes: np.ndarray  # (M, 7) x, y, z(centre), dx, dy, dz, heading
    names: list[str]
    num_points: np.ndarray  # (M,) lidar returns inside each object
    occlusion: np.ndarray  # (M,) fraction of the object's rays blocked by something else
    truncation: np.ndarray  # (M,) fraction of the BEV footprint outside the label range
    meta: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# mesh primitives: (vertices (V, 3) float64, triangles (F, 3) int32)


def _box(center, size):
    cx, cy, cz = center
    sx, sy, sz = (s / 2 for s in size)
    v = np.array([[cx + a * sx, cy + b * sy, cz + c * sz] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)])
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], dtype=np.int32)
    return v, f


_TEMPLATES: dict = {}


def _template(kind):
    if kind not in _TEMPLATES:
        from perception3d._open3d import import_open3d

        o3d = import_open3d()

        if kind == "sphere":
            m = o3d.geometry.TriangleMesh.create_sphere(1.0, resolution=8)
        elif kind == "cylinder":  # radius 1, height 1, along z, centred
            m = o3d.geometry.TriangleMesh.create_cylinder(1.0, 1.0, resolution=12, split=1)
        elif kind == "torus":  # ring radius 1 in the xz plane, tube 0.1
            m = o3d.geometry.TriangleMesh.create_torus(1.0, 0.1, radial_resolution=16, tubular_resolution=6)
            m.rotate(o3d.geometry.get_rotation_matrix_from_xyz((math.pi / 2, 0, 0)), center=(0, 0, 0))
        else:
            raise KeyError(kind)
        _TEMPLATES[kind] = (np.asarray(m.vertices).copy(), np.asarray(m.triangles).astype(np.int32))
    v, f = _TEMPLATES[kind]
    return v.copy(), f


def _ellipsoid(center, radii):
    v, f = _template("sphere")
    return v * np.asarray(radii) + np.asarray(center), f


def _cylinder(center, radius, height, axis="z"):
    v, f = _template("cylinder")
    v = v * np.array([radius, radius, height])
    if axis == "y":
        v = v[:, [0, 2, 1]]
    elif axis == "x":
        v = v[:, [2, 1, 0]]
    return v + np.asarray(center), f


def _wheel(center, radius, width):
    v, f = _template("torus")
    v = v * np.array([radius, width / 0.2, radius])
    return v + np.asarray(center), f


def _merge(parts):
    verts, faces, n = [], [], 0
    for v, f in parts:
        verts.append(v)
        faces.append(f + n)
        n += len(v)
    return np.concatenate(verts), np.concatenate(faces)


# ---------------------------------------------------------------------------------------------------
# object models, built in a local frame (x along the heading, z up, bottom at z = 0)


def _car(rng):
    length, width = rng.uniform(3.6, 5.2), rng.uniform(1.6, 2.0)
    body_h = rng.uniform(0.55, 0.8)
    clearance = rng.uniform(0.15, 0.3)
    wheel_r = rng.uniform(0.28, 0.36)
    cabin_l = length * rng.uniform(0.45, 0.65)
    cabin_h = rng.uniform(0.4, 0.75) * (1.3 if rng.random() < 0.2 else 1.0)  # vans and SUVs
    cabin_w = width * rng.uniform(0.8, 0.92)
    cabin_x = rng.uniform(-0.15, 0.05) * length
    parts = [_box((0, 0, clearance + body_h / 2), (length, width, body_h)),
             _box((cabin_x, 0, clearance + body_h + cabin_h / 2), (cabin_l, cabin_w, cabin_h))]
    # hood slope: a thin wedge-ish box in front of the cabin
    parts.append(_box((cabin_x + cabin_l / 2 + 0.15, 0, clearance + body_h + 0.05), (0.3, cabin_w, 0.1)))
    wx = length / 2 - rng.uniform(0.6, 0.9)
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(_cylinder((sx * wx, sy * (width / 2 - 0.12), wheel_r), wheel_r, 0.22, axis="y"))
    # mirrors stick out a little: the label box must still enclose them
    for sy in (-1, 1):
        parts.append(_box((cabin_x + cabin_l / 2 - 0.1, sy * (width / 2 + 0.07), clearance + body_h + 0.05),
                          (0.12, 0.14, 0.1)))
    return _merge(parts), rng.uniform(0.2, 0.9)


def _pedestrian(rng):
    height = rng.uniform(1.45, 1.95)
    leg_h = height * 0.47
    torso_h = height * 0.33
    head_r = height * 0.065
    shoulder = rng.uniform(0.36, 0.5)
    stride = rng.uniform(-0.3, 0.3)
    parts = []
    for sy, s in ((-1, stride), (1, -stride)):
        parts.append(_cylinder((s / 2, sy * shoulder * 0.22, leg_h / 2), 0.07, leg_h))
    parts.append(_ellipsoid((0, 0, leg_h + torso_h / 2), (0.14 + rng.uniform(0, 0.06), shoulder / 2, torso_h / 2)))
    parts.append(_ellipsoid((0, 0, leg_h + torso_h + head_r * 0.9), (head_r, head_r * 0.9, head_r)))
    swing = rng.uniform(-0.25, 0.25)
    for sy in (-1, 1):
        parts.append(_cylinder((sy * swing, sy * (shoulder / 2 + 0.05), leg_h + torso_h * 0.55), 0.045, torso_h * 0.95))
    if rng.random() < 0.25:  # a backpack or a bag
        parts.append(_box((-0.2, 0, leg_h + torso_h * 0.6), (0.18, 0.3, 0.35)))
    return _merge(parts), rng.uniform(0.1, 0.6)


def _cyclist(rng):
    wheel_r = rng.uniform(0.3, 0.36)
    base = rng.uniform(1.0, 1.15)
    parts = [_wheel((base / 2, 0, wheel_r), wheel_r, 0.05), _wheel((-base / 2, 0, wheel_r), wheel_r, 0.05)]
    parts.append(_box((0, 0, wheel_r + 0.2), (base * 0.8, 0.05, 0.05)))  # frame
    parts.append(_box((-0.1, 0, wheel_r + 0.35), (0.05, 0.05, 0.45)))  # seat tube
    parts.append(_box((base / 2 - 0.05, 0, wheel_r + 0.5), (0.05, 0.55, 0.05)))  # handlebar
    rider_h = rng.uniform(1.5, 1.9)
    hip = wheel_r + 0.6
    torso = rider_h * 0.33
    lean = rng.uniform(0.2, 0.6)
    parts.append(_ellipsoid((-0.05 + lean * torso / 2, 0, hip + torso / 2 * math.cos(lean)), (0.16, 0.2, torso / 2)))
    head_r = rider_h * 0.065
    parts.append(_ellipsoid((-0.05 + lean * torso, 0, hip + torso * math.cos(lean) + head_r), (head_r,) * 3))
    for sy in (-1, 1):
        parts.append(_cylinder((0.0, sy * 0.12, hip - 0.25), 0.06, 0.55))
        parts.append(_cylinder((0.2 + lean * 0.2, sy * 0.2, hip + torso * 0.6), 0.04, 0.35, axis="x"))
    return _merge(parts), rng.uniform(0.2, 0.8)


_BUILDERS = {"Car": _car, "Pedestrian": _pedestrian, "Cyclist": _cyclist}


# ---------------------------------------------------------------------------------------------------


def _rot_z(h):
    c, s = math.cos(h), math.sin(h)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _ground_fn(rng, max_slope_deg):
    sx, sy = (math.tan(math.radians(rng.uniform(-max_slope_deg, max_slope_deg))) for _ in range(2))
    amp, kx, ky, ph = rng.uniform(0, 0.25), rng.uniform(0.02, 0.08), rng.uniform(0.02, 0.08), rng.uniform(0, 6.3)

    def ground(x, y):
        return sx * x + sy * y + amp * np.sin(kx * x + ph) * np.cos(ky * y)

    return ground


def _ground_mesh(ground, extent=110.0, step=2.0):
    xs = np.arange(-extent, extent + step, step)
    gx, gy = np.meshgrid(xs, xs, indexing="ij")
    v = np.stack([gx, gy, ground(gx, gy)], -1).reshape(-1, 3)
    n = len(xs)
    i, j = np.meshgrid(np.arange(n - 1), np.arange(n - 1), indexing="ij")
    a = (i * n + j).ravel()
    f = np.concatenate([np.stack([a, a + n, a + n + 1], 1), np.stack([a, a + n + 1, a + 1], 1)]).astype(np.int32)
    return v, f


def _footprint_free(x, y, r, placed):
    return all((x - px) ** 2 + (y - py) ** 2 > (r + pr) ** 2 for px, py, pr in placed)


def simulate_frame(rng: np.random.Generator, lidar: LidarConfig = LidarConfig(),
                   scene: SceneConfig = SceneConfig(), sensor: tuple[float, float, float] = (0.0, 0.0, 0.0),
                   ) -> SimulatedFrame:
    """Build one random scene and ray-cast one lidar revolution over it.

    `sensor` (x, y in metres, yaw in radians) places the lidar in the scene's frame, within the ego footprint's free
    2.5 m around the scene's origin: the same generator state and different `sensor`s give sweeps of one scene along
    a trajectory. Points and boxes are in the sensor's frame; `meta["sensor_pose"]` is its 4 x 4 pose in the scene.
    """
    from perception3d._open3d import import_open3d

    o3d = import_open3d()

    ground = _ground_fn(rng, scene.max_slope_deg)
    sx, sy, syaw = (float(v) for v in sensor)
    h0 = ground(sx, sy) + lidar.height  # sensor height in the world frame
    meshes = [(_ground_mesh(ground), 0.3, -1)]  # (mesh, reflectivity, object index or -1)
    placed = [(0.0, 0.0, 2.5)]  # keep the ego vehicle's footprint free
    boxes, names = [], []

    road_heading = rng.uniform(-math.pi, math.pi)

    def place(name, x, y, heading):
        (v, f), refl = _BUILDERS[name](rng)
        lo, hi = v.min(0), v.max(0)
        centre_local = (lo + hi) / 2
        z0 = ground(x, y)
        world = v @ _rot_z(heading).T + np.array([x, y, z0])
        c = _rot_z(heading) @ centre_local + np.array([x, y, z0])
        boxes.append([c[0], c[1], c[2], *(hi - lo), heading])
        names.append(name)
        meshes.append(((world, f), refl, len(boxes) - 1))

    # parked rows of cars along a road: they occlude each other
    n_cars = int(rng.integers(scene.cars[0], scene.cars[1] + 1))
    rows = []
    for side in (-1, 1):
        offset = side * rng.uniform(4.0, 8.0)
        rows.append((offset, rng.uniform(-scene.object_range, 0)))
    tries = 0
    while sum(n == "Car" for n in names) < n_cars and tries < 400:
        tries += 1
        if rng.random() < 0.5:  # parked in a row
            off, s = rows[int(rng.integers(2))]
            along = s + rng.uniform(0, 2 * scene.object_range)
            d = np.array([math.cos(road_heading), math.sin(road_heading)])
            n = np.array([-d[1], d[0]])
            x, y = along * d + off * n
            heading = road_heading + rng.normal(0, 0.08) + (math.pi if rng.random() < 0.5 else 0)
        else:
            r, a = rng.uniform(4, scene.object_range), rng.uniform(-math.pi, math.pi)
            x, y = r * math.cos(a), r * math.sin(a)
            heading = road_heading + rng.choice([0, math.pi / 2, math.pi, -math.pi / 2]) + rng.normal(0, 0.3) \
                if rng.random() < 0.7 else rng.uniform(-math.pi, math.pi)
        if math.hypot(x, y) > scene.object_range or not _footprint_free(x, y, 2.6, placed):
            continue
        placed.append((x, y, 2.6))
        place("Car", x, y, heading)
    for name, (lo, hi), radius in (("Pedestrian", scene.pedestrians, 0.5), ("Cyclist", scene.cyclists, 1.0)):
        count, tries = int(rng.integers(lo, hi + 1)), 0
        while sum(n == name for n in names) < count and tries < 400:
            tries += 1
            r, a = rng.uniform(3, scene.object_range), rng.uniform(-math.pi, math.pi)
            x, y = r * math.cos(a), r * math.sin(a)
            if not _footprint_free(x, y, radius, placed):
                continue
            placed.append((x, y, radius))
            place(name, x, y, rng.uniform(-math.pi, math.pi))
    n_objects = len(boxes)

    # clutter
    def free_spot(rmin, rmax, radius):
        for _ in range(50):
            r, a = rng.uniform(rmin, rmax), rng.uniform(-math.pi, math.pi)
            x, y = r * math.cos(a), r * math.sin(a)
            if _footprint_free(x, y, radius, placed):
                placed.append((x, y, radius))
                return x, y
        return None

    for _ in range(int(rng.integers(*scene.buildings) + 1)):
        w, d, hgt = rng.uniform(6, 20), rng.uniform(6, 15), rng.uniform(4, 20)
        spot = free_spot(14, 60, max(w, d) / 2 * 1.42)
        if spot:
            x, y = spot
            v, f = _box((0, 0, hgt / 2 - 1), (w, d, hgt))
            meshes.append(((v @ _rot_z(rng.uniform(-math.pi, math.pi)).T + [x, y, ground(x, y)], f),
                           rng.uniform(0.2, 0.6), -1))
    for _ in range(int(rng.integers(0, 4))):  # walls and fences
        length, hgt = rng.uniform(5, 20), rng.uniform(0.6, 2.5)
        spot = free_spot(8, 45, length / 2)
        if spot:
            x, y = spot
            v, f = _box((0, 0, hgt / 2), (length, 0.25, hgt))
            meshes.append(((v @ _rot_z(rng.uniform(-math.pi, math.pi)).T + [x, y, ground(x, y)], f), 0.4, -1))
    for _ in range(int(rng.integers(*scene.poles) + 1)):
        spot = free_spot(3, 55, 0.3)
        if spot:
            x, y = spot
            hgt = rng.uniform(2.5, 9)
            parts = [_cylinder((0, 0, hgt / 2), rng.uniform(0.05, 0.18), hgt)]
            if rng.random() < 0.3:  # a sign on it
                parts.append(_box((0, 0, hgt - 0.4), (0.05, 0.7, 0.6)))
            v, f = _merge(parts)
            meshes.append(((v + [x, y, ground(x, y)], f), rng.uniform(0.3, 0.95), -1))
    for _ in range(int(rng.integers(*scene.trees) + 1)):
        spot = free_spot(4, 55, 1.5)
        if spot:
            x, y = spot
            th, cr = rng.uniform(1.5, 4), rng.uniform(1.0, 3.0)
            v, f = _merge([_cylinder((0, 0, th / 2), rng.uniform(0.1, 0.3), th),
                           _ellipsoid((0, 0, th + cr * 0.7), (cr, cr * rng.uniform(0.8, 1.2), cr))])
            meshes.append(((v + [x, y, ground(x, y)], f), rng.uniform(0.1, 0.4), -1))
    for _ in range(int(rng.integers(*scene.bushes) + 1)):
        spot = free_spot(3, 45, 1.0)
        if spot:
            x, y = spot
            r = rng.uniform(0.3, 1.0)
            v, f = _ellipsoid((0, 0, r * 0.6), (r * rng.uniform(1, 2), r, r * 0.8))
            meshes.append(((v @ _rot_z(rng.uniform(0, 3.2)).T + [x, y, ground(x, y)], f), 0.2, -1))
    for _ in range(int(rng.integers(0, 6))):  # bins, boxes: small car-unlike clutter
        spot = free_spot(3, 40, 0.6)
        if spot:
            x, y = spot
            s = rng.uniform(0.4, 1.2, size=3)
            v, f = _box((0, 0, s[2] / 2), s)
            meshes.append(((v @ _rot_z(rng.uniform(0, 3.2)).T + [x, y, ground(x, y)], f), 0.5, -1))

    rc = o3d.t.geometry.RaycastingScene()
    geom_obj, geom_refl = [], []
    for (v, f), refl, obj in meshes:
        rc.add_triangles(o3d.core.Tensor(v.astype(np.float32)), o3d.core.Tensor(f.astype(np.uint32)))
        geom_obj.append(obj)
        geom_refl.append(refl)
    geom_obj, geom_refl = np.array(geom_obj), np.array(geom_refl)

    # rays: beams x azimuth steps, from the sensor
    elev = np.linspace(lidar.elevation[0], lidar.elevation[1], lidar.beams)
    elev = np.radians(elev + rng.normal(0, lidar.beam_jitter, lidar.beams))
    az = np.linspace(-math.pi, math.pi, lidar.azimuth_steps, endpoint=False)
    az = az + rng.uniform(0, 2 * math.pi / lidar.azimuth_steps)
    ee, aa = np.meshgrid(elev, az, indexing="ij")
    dirs = np.stack([np.cos(ee) * np.cos(aa), np.cos(ee) * np.sin(aa), np.sin(ee)], -1).reshape(-1, 3)
    yaw = _rot_z(syaw)
    if syaw:
        dirs = dirs @ yaw.T  # sensor -> scene axes
    origin = np.array([sx, sy, h0])
    rays = np.concatenate([np.broadcast_to(origin, dirs.shape), dirs], 1).astype(np.float32)
    hit = rc.cast_rays(o3d.core.Tensor(rays))
    t = hit["t_hit"].numpy().astype(np.float64)
    gid = hit["geometry_ids"].numpy().astype(np.int64)
    normals = hit["primitive_normals"].numpy().astype(np.float64)
    ok = np.isfinite(t) & (t < lidar.max_range)
    obj_of_ray = np.where(ok, geom_obj[np.where(ok, gid, 0)], -2)

    # occlusion: rays that would hit each object alone vs. rays whose first hit is the object
    occlusion = np.zeros(n_objects)
    for k in range(n_objects):
        (v, f), _, _ = meshes[k + 1]
        solo = o3d.t.geometry.RaycastingScene()
        solo.add_triangles(o3d.core.Tensor(v.astype(np.float32)), o3d.core.Tensor(f.astype(np.uint32)))
        bx = np.array(boxes[k])
        ang = math.atan2(bx[1] - sy, bx[0] - sx) - syaw
        half = math.atan2(0.5 * math.hypot(bx[3], bx[4]), max(math.hypot(bx[0] - sx, bx[1] - sy), 1e-3)) + 0.02
        dang = np.abs((aa.ravel() - ang + math.pi) % (2 * math.pi) - math.pi)
        sel = np.nonzero(dang <= half)[0]
        if sel.size == 0:
            occlusion[k] = 1.0
            continue
        t_solo = solo.cast_rays(o3d.core.Tensor(rays[sel]))["t_hit"].numpy()
        would = np.isfinite(t_solo) & (t_solo < lidar.max_range)
        n_would = int(would.sum())
        n_seen = int((obj_of_ray[sel][would] == k).sum())
        occlusion[k] = 1.0 - n_seen / n_would if n_would else 1.0

    # returns: noise, dropout, intensity
    r = t + rng.normal(0, lidar.range_noise, t.shape)
    cos_inc = np.abs((normals * dirs).sum(-1))
    refl = geom_refl[np.where(ok, gid, 0)] * (1 + rng.normal(0, 0.1, t.shape))
    intensity = np.clip(refl * (0.3 + 0.7 * cos_inc) * np.exp(-np.where(ok, t, 0) / 150), 0, 1)
    keep = ok & (rng.random(t.shape) >= lidar.dropout)
    keep &= rng.random(t.shape) >= np.clip(0.15 - intensity, 0, 0.15)  # weak returns get lost more
    pts = origin + dirs * np.where(keep, r, 0)[:, None]
    pts = pts[keep] - origin  # lidar frame: the sensor at the origin
    if syaw:
        pts = pts @ yaw  # scene -> sensor axes
    points = np.concatenate([pts, intensity[keep, None]], 1).astype(np.float32)
    ray_obj = obj_of_ray[keep]
    num_points = np.bincount(ray_obj[ray_obj >= 0], minlength=n_objects)[:n_objects]

    boxes_arr = np.array(boxes, dtype=np.float64).reshape(-1, 7)
    boxes_arr[:, :3] -= origin
    if syaw:
        boxes_arr[:, :3] = boxes_arr[:, :3] @ yaw
        boxes_arr[:, 6] = (boxes_arr[:, 6] - syaw + math.pi) % (2 * math.pi) - math.pi
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = yaw, origin
    truncation = _truncation(boxes_arr, scene.label_range)
    return SimulatedFrame(points=points, boxes=boxes_arr, names=names, num_points=num_points,
                          occlusion=occlusion, truncation=truncation,
                          meta={"sensor_height": float(h0 - ground(sx, sy)), "sensor_pose": pose.tolist()})


def _truncation(boxes, limit):
    """Fraction of each BEV footprint outside the square |x|, |y| <= limit (sampled on a 9x9 grid)."""
    u = np.linspace(-0.5, 0.5, 9)
    gu, gv = np.meshgrid(u, u, indexing="ij")
    out = np.zeros(len(boxes))
    for k, b in enumerate(boxes):
        c, s = math.cos(b[6]), math.sin(b[6])
        lx, ly = gu.ravel() * b[3], gv.ravel() * b[4]
        x, y = b[0] + c * lx - s * ly, b[1] + s * lx + c * ly
        out[k] = np.mean((np.abs(x) > limit) | (np.abs(y) > limit))
    return out


# ---------------------------------------------------------------------------------------------------
# the KITTI layout


def _lidar_to_camera_boxes(boxes):
    """Lidar `(M, 7)` boxes -> KITTI (h, w, l), bottom-centre location in the camera frame, rotation_y."""
    bottom = np.concatenate([boxes[:, :2], boxes[:, 2:3] - boxes[:, 5:6] / 2, np.ones((len(boxes), 1))], 1)
    loc = bottom @ _TR_VELO_TO_CAM.T
    dims = boxes[:, [5, 4, 3]]
    ry = -boxes[:, 6] - np.pi / 2
    ry = (ry + np.pi) % (2 * np.pi) - np.pi
    return dims, loc, ry


def _bbox_2d(box):
    import torch

    from perception3d.detection.boxes import boxes_to_corners_3d

    corners = boxes_to_corners_3d(torch.from_numpy(box[None]))[0].numpy()
    cam = np.concatenate([corners, np.ones((8, 1))], 1) @ _TR_VELO_TO_CAM.T
    if (cam[:, 2] <= 0.1).any():
        return [-1.0, -1.0, -1.0, -1.0]
    uv = cam @ _P2[:, :3].T
    uv = uv[:, :2] / uv[:, 2:3]
    x1, y1 = np.clip(uv.min(0), 0, _IMAGE_SIZE)
    x2, y2 = np.clip(uv.max(0), 0, _IMAGE_SIZE)
    if x2 <= x1 or y2 <= y1:
        return [-1.0, -1.0, -1.0, -1.0]
    return [float(x1), float(y1), float(x2), float(y2)]


def calib_text() -> str:
    """The synthetic calib file (KITTI keys)."""
    def row(name, m):
        return f"{name}: " + " ".join(f"{v:.12e}" for v in np.asarray(m).ravel())

    p0 = _P2.copy()
    lines = [row("P0", p0), row("P1", p0), row("P2", _P2), row("P3", _P2), row("R0_rect", np.eye(3)),
             row("Tr_velo_to_cam", _TR_VELO_TO_CAM), row("Tr_imu_to_velo", np.eye(4)[:3])]
    return "\n".join(lines) + "\n"


def label_text(frame: SimulatedFrame) -> str:
    """KITTI label_2 lines for one frame."""
    dims, loc, ry = _lidar_to_camera_boxes(frame.boxes)
    lines = []
    for k, name in enumerate(frame.names):
        occ = 0 if frame.occlusion[k] < 0.2 else 1 if frame.occlusion[k] < 0.5 else 2
        box = frame.boxes[k]
        alpha = ry[k] - math.atan2(-loc[k, 0], loc[k, 2]) if loc[k, 2] > 0 else -10.0
        alpha = (alpha + np.pi) % (2 * np.pi) - np.pi if alpha != -10.0 else alpha
        bbox = _bbox_2d(box)
        typ = name if frame.num_points[k] > 0 else "DontCare"
        lines.append(f"{typ} {frame.truncation[k]:.2f} {occ} {alpha:.4f} "
                     + " ".join(f"{v:.2f}" for v in bbox) + " "
                     + " ".join(f"{v:.4f}" for v in dims[k]) + " "
                     + " ".join(f"{v:.4f}" for v in loc[k]) + f" {ry[k]:.4f}")
    return "\n".join(lines) + ("\n" if lines else "")


def write_kitti_frame(root: Path, index: int, frame: SimulatedFrame) -> None:
    """Write one frame's velodyne .bin, label_2 and calib files under `root/training`."""
    base = Path(root) / "training"
    for sub in ("velodyne", "label_2", "calib"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    name = f"{index:06d}"
    frame.points.astype(np.float32).tofile(base / "velodyne" / f"{name}.bin")
    (base / "label_2" / f"{name}.txt").write_text(label_text(frame))
    (base / "calib" / f"{name}.txt").write_text(calib_text())


_SIZES = {"tiny": (6, 2, 32, 512), "small": (640, 160, 64, 1024), "full": (3200, 800, 64, 2048)}


def make_lidar_scenes(out: Path, *, seed: int, size: str) -> dict:
    """The `lidar-scenes` generator: a simulated KITTI-layout detection set.

    Sizes: tiny (6 train + 2 val frames, 32 beams x 512), small (640 + 160, 64 beams x 1024),
    full (3200 + 800, 64 beams x 2048, about 100k points a frame).
    """
    if size not in _SIZES:
        raise ValueError(f"size must be one of {sorted(_SIZES)}, not {size!r}")
    n_train, n_val, beams, steps = _SIZES[size]
    out = Path(out)
    lidar = LidarConfig(beams=beams, azimuth_steps=steps,
                        elevation=(-24.9, 2.0) if beams == 64 else (-30.67, 10.67) if beams == 32 else (-25.0, 15.0))
    counts = {n: 0 for n in CLASS_NAMES}
    n_points = []
    for i in range(n_train + n_val):
        frame = simulate_frame(np.random.default_rng([seed, i]), lidar)
        write_kitti_frame(out, i, frame)
        for n, p in zip(frame.names, frame.num_points):
            counts[n] += int(p > 0)
        n_points.append(len(frame.points))
    (out / "ImageSets").mkdir(parents=True, exist_ok=True)
    (out / "ImageSets" / "train.txt").write_text("".join(f"{i:06d}\n" for i in range(n_train)))
    (out / "ImageSets" / "val.txt").write_text("".join(f"{i:06d}\n" for i in range(n_train, n_train + n_val)))
    summary = {"generator": "lidar-scenes", "seed": seed, "size": size, "train": n_train, "val": n_val,
               "beams": beams, "azimuth_steps": steps, "objects": counts,
               "mean_points": float(np.mean(n_points))}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
