"""Training RoITr on generated pairs: the LightningModule, the DataModule and the `registration-pairs` generator.

Data: base clouds from the real CGAL scans and meshes and the octomap corridor scan (`omnisense.sample_data`), from
which every training step draws a fresh partial pair (view crops, density, noise, a uniform SO(3) rotation;
`perception3d.registration.pairs.make_pair`). Validation uses fixed pairs written by the generator as a pair
list (`val.csv`). The benchmark's scans (kitten, bunny, hippo) are held out of the training clouds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

import lightning.pytorch as pl

from omnisense.train._distributed import gather_samples
from perception3d.registration import metrics
from perception3d.registration.losses import coarse_circle_loss, fine_nll_loss
from perception3d.registration.pairs import PairConfig, PairEntry, make_pair, read_pair_list, write_pair_list
from perception3d.registration.pipeline import CANONICAL_VOXEL, auto_voxel_size, lgr_transform, prepare

# Held out for `omnisense bench registration` and the demo.
HELD_OUT = ("kitten", "bunny00", "hippo1", "hippo2")
SCANS = ("b9_training", "building", "corridor")  # the real scene scans among the training clouds
MESHES_SMALL = ("elephant", "camel", "cow", "bull", "pig", "lion", "dino", "triceratops", "elk", "bear", "man",
                "hand", "head", "femur", "fandisk", "armadillo", "ChineseDragon-10kv", "horse", "mannequin-devil",
                "rotor", "nefertiti", "homer", "diplodocus", "mushroom", "turbine", "pinion", "helmet", "blade")


# ---------------------------------------------------------------------------------------------------------------
# Loading the source clouds


def load_base_cloud(path: Path, mesh_points: int = 10000, seed: int = 0) -> np.ndarray:
    """Points [N, 3] of a scan (.xyz, .ply, octomap scan.dat text) or points sampled on a mesh (.off)."""
    import open3d as o3d

    path = Path(path)
    if path.suffix == ".off":
        mesh = o3d.io.read_triangle_mesh(str(path))
        o3d.utility.random.seed(seed)
        return np.asarray(mesh.sample_points_uniformly(mesh_points).points, dtype=np.float64)
    if path.suffix == ".ply":
        return np.asarray(o3d.io.read_point_cloud(str(path)).points, dtype=np.float64)
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            try:
                rows.append([float(v) for v in parts[:3]])
            except ValueError:  # octomap's "NODE ..." pose lines and headers
                continue
    return np.asarray(rows, dtype=np.float64)


def _synthetic_clouds(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Offline stand-ins for tests (tiny): a bumpy ellipsoid, a box corner and a torus, 3000 points each."""
    n = 3000
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    bumpy = u * (1 + 0.15 * np.sin(4 * u[:, :1]) * np.cos(3 * u[:, 1:2])) * [1.0, 0.7, 0.5]
    faces = rng.integers(0, 3, n)
    box = rng.uniform(0, 1, size=(n, 3)) * [1.0, 0.8, 0.6]
    box[np.arange(n), faces] = 0.0
    a, b = rng.uniform(0, 2 * np.pi, (2, n))
    torus = np.stack([(1 + 0.3 * np.cos(b)) * np.cos(a), (1 + 0.3 * np.cos(b)) * np.sin(a), 0.3 * np.sin(b)], 1)
    return {"bumpy": bumpy, "corner": box, "torus": torus}


def _real_sources() -> dict[str, Path]:
    import omnisense

    cgal = Path(omnisense.sample_data("cgal"))
    corridor = Path(omnisense.sample_data("octomap-corridor"))
    meshes = {p.stem: p for p in sorted(cgal.rglob("*.off")) if p.stem in MESHES_SMALL}
    scans = {p.stem: p for p in sorted(cgal.rglob("points_3/*")) if p.stem in ("b9_training", "building")}
    corridor_files = sorted(corridor.rglob("scan.dat*"))
    out = {**meshes, **scans}
    if corridor_files:
        out["corridor"] = corridor_files[0]
    return out


def simulated_sweeps(count: int, *, seed: int, max_range: float = 40.0) -> dict[str, np.ndarray]:
    """`count` sweeps of the detection simulator (street scenes, 64 beams), the points within `max_range` m."""
    from perception3d.detection.simulator import simulate_frame

    rng = np.random.default_rng([seed, 7])
    sweeps = {}
    for k in range(count):
        pts = simulate_frame(rng).points[:, :3].astype(np.float64)
        sweeps[f"lidar_sim_{k:02d}"] = pts[np.linalg.norm(pts[:, :2], axis=1) < max_range]
    return sweeps


def make_registration_pairs(out: Path, *, seed: int, size: str, sources: dict[str, Path] | None = None,
                            lidar_sweeps: int | None = None) -> dict:
    """`omnisense data make registration-pairs`: base clouds + fixed validation pairs.

    Writes `clouds/<name>.npy` (base clouds, float32 [N, 3] in their own unit), `clouds.txt` (one name per
    line), `scenes.txt` (the names that are scenes rather than objects, for `scene_share`) and `val.csv` (a
    generic pair list of `val/<i>_{src,tgt}.npy`). tiny: three synthetic shapes (no download); small/full: the
    CGAL meshes and scans and the corridor scan (kitten, bunny and hippo held out), plus simulated lidar
    sweeps (`lidar_sweeps`, default 6 / 24; the detection simulator's 64-beam sensor, points within 40 m, metres).
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    scenes: list[str] = []
    if size == "tiny":
        clouds = _synthetic_clouds(rng)
    else:
        sources = sources if sources is not None else _real_sources()
        clouds = {name: load_base_cloud(path, seed=seed) for name, path in sources.items() if name not in HELD_OUT}
        scenes = [name for name in clouds if name in SCANS]
        sweeps = {"small": 6, "full": 24}[size] if lidar_sweeps is None else lidar_sweeps
        clouds.update(simulated_sweeps(sweeps, seed=seed))
        scenes += [name for name in clouds if name.startswith("lidar_sim_")]
    # Each cloud in its centroid's frame: a georeferenced scan (the b9 tile sits at 6e5 m) loses its detail in float32,
    # and the RTE of a pair made far from the origin measures the offset (rotation error x distance), not the
    # registration (a dragon mesh at z = -983 with a 0.7 degree error had an RTE of 6.8% of its extent).
    clouds = {name: pts - pts.mean(0) for name, pts in clouds.items()}
    val_pairs = {"tiny": 3, "small": 40, "full": 200}[size]
    (out / "clouds").mkdir(parents=True, exist_ok=True)
    (out / "val").mkdir(exist_ok=True)
    names = sorted(clouds)
    for name in names:
        pts = clouds[name]
        if len(pts) > 200000:  # keep the files small; the corridor scan has 88k points
            pts = pts[rng.choice(len(pts), 200000, replace=False)]
        np.save(out / "clouds" / f"{name}.npy", pts.astype(np.float32))
    (out / "clouds.txt").write_text("\n".join(names) + "\n")
    (out / "scenes.txt").write_text("".join(f"{n}\n" for n in names if n in scenes))
    entries = []
    # The scans and meshes first, in the order the set had before the sweeps (the same validation pairs as then),
    # then one pair per sweep from a generator of their own.
    swept = [n for n in names if n.startswith("lidar_sim_")]
    unswept = [n for n in names if n not in swept]
    sweep_rng = np.random.default_rng([seed, 8])
    order = [(unswept[i % len(unswept)], rng) for i in range(val_pairs)] + [(n, sweep_rng) for n in swept]
    for i, (name, pair_rng) in enumerate(order):
        src, tgt, t = make_pair(clouds[name], pair_rng)
        s, g = out / "val" / f"{i:04d}_{name}_src.npy", out / "val" / f"{i:04d}_{name}_tgt.npy"
        np.save(s, src.astype(np.float32))
        np.save(g, tgt.astype(np.float32))
        entries.append(PairEntry(s, g, t))
    write_pair_list(out / "val.csv", entries)
    return {"root": str(out), "clouds": names, "scenes": [n for n in names if n in scenes], "val_pairs": len(order),
            "seed": seed, "size": size}


# ---------------------------------------------------------------------------------------------------------------
# Datasets


def _canonical_item(src: np.ndarray, tgt: np.ndarray, transform: np.ndarray, voxel: float, num_points: int,
                    rng: np.random.Generator) -> dict:
    """A training / validation pair as `register_roitr` feeds the network (`prepare`: voxel grid, subsample drawn
    from `rng`, canonical scale, normals), with the true transform and the target's extent in canonical units."""
    item = {}
    for side, pts in (("src", src), ("tgt", tgt)):
        p = prepare(pts, voxel, max_points=num_points, rng=rng)
        item[f"{side}_points"], item[f"{side}_normals"] = p.points, p.normals
    scale = p.scale
    t = torch.as_tensor(transform, dtype=torch.float32).clone()
    t[:3, 3] *= scale
    item["transform"] = t
    item["extent"] = float(metrics.extent(tgt) * scale)
    item["scale"] = float(scale)  # canonical units per unit of the input clouds
    return item


class GeneratedPairs(Dataset):
    """Fresh pairs drawn from the base clouds: item i of epoch e is seeded by (seed, e, i).

    scene_share: the probability that a pair comes from a scene (`scenes.txt`: real scans, simulated sweeps)
    rather than an object; None: every cloud equally likely (objects then outnumber scenes about 4 to 1).
    lidar_sweeps: False leaves out the simulated sweeps (the set as it was before they were added).
    pair_voxel: voxelise each pair at the size that leaves about `num_points` target points, as `omnisense
    register` and the benchmark do; False: one size per base cloud (about 1.3 x num_points over the whole cloud),
    which for crops of unevenly dense scans (the corridor) is up to 2x larger than at test time.
    """

    def __init__(self, root: Path, *, num_points: int, length: int, seed: int, config: PairConfig = PairConfig(),
                 scene_share: float | None = None, lidar_sweeps: bool = True, pair_voxel: bool = False):
        names = (Path(root) / "clouds.txt").read_text().split()
        if not lidar_sweeps:
            names = [n for n in names if not n.startswith("lidar_sim_")]
        self.clouds = [np.load(Path(root) / "clouds" / f"{n}.npy").astype(np.float64) for n in names]
        scenes_file = Path(root) / "scenes.txt"
        scenes = set(scenes_file.read_text().split()) if scenes_file.exists() else set()
        is_scene = np.array([n in scenes for n in names])
        self.probs = None
        if scene_share is not None and is_scene.any() and (~is_scene).any():
            self.probs = np.where(is_scene, scene_share / is_scene.sum(), (1 - scene_share) / (~is_scene).sum())
        # One voxel per base cloud (unless pair_voxel): about 1.3x num_points over the whole cloud, so a crop holds
        # about num_points.
        self.voxels = None if pair_voxel else [auto_voxel_size(c, int(num_points * 1.3)) for c in self.clouds]
        self.num_points, self.length, self.seed, self.config = num_points, length, seed, config
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        n = len(self.clouds)
        k = int(rng.choice(n, p=self.probs)) if self.probs is not None else int(rng.integers(n))
        src, tgt, t = make_pair(self.clouds[k], rng, self.config)
        voxel = auto_voxel_size(tgt, self.num_points) if self.voxels is None else self.voxels[k]
        return _canonical_item(src, tgt, t, voxel, self.num_points, rng)


class PairListDataset(Dataset):
    """Fixed pairs of a generic pair list (.npy clouds), voxelised to about `num_points` target points."""

    def __init__(self, csv: Path, *, num_points: int, limit: int | None = None):
        self.entries = read_pair_list(csv)[:limit]
        self.num_points = num_points

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict:
        e = self.entries[index]
        src, tgt = np.load(e.source).astype(np.float64), np.load(e.target).astype(np.float64)
        voxel = auto_voxel_size(tgt, self.num_points)
        return _canonical_item(src, tgt, e.transform, voxel, self.num_points, np.random.default_rng(index))


class EpochSampler(Sampler[int]):
    """Indices 0..len-1 in order; Lightning's per-epoch `set_epoch` call re-seeds the dataset's draws.

    Lightning calls `set_epoch` on every train sampler before each epoch (not only distributed ones), so the
    pairs of epoch e are drawn with seed (seed, e, index) without reloading the dataloader. Without it the
    generator's epoch stayed 0 and every epoch replayed the same `pairs_per_epoch` pairs.
    """

    def __init__(self, dataset: GeneratedPairs):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        return iter(range(len(self.dataset)))

    def set_epoch(self, epoch: int) -> None:
        self.dataset.epoch = epoch


def _first(batch: list[dict]) -> dict:
    return batch[0]  # RoITr registers one pair at a time (official batch size 1)


class RegistrationDataModule(pl.LightningDataModule):
    """Generated registration pairs.

    Args:
        root: a folder written by `omnisense data make registration-pairs` (None only with tiny=True).
        tiny: generate a tiny synthetic set into a temporary folder (tests).
        num_points: at most this many points per cloud (after the voxel grid).
        pairs_per_epoch: training pairs drawn per epoch; val_limit: validation pairs used (None: all).
        scene_share, lidar_sweeps: which training clouds are drawn; pair_voxel: the voxel of each pair
            (see GeneratedPairs).
    """

    def __init__(self, root: str | None = None, tiny: bool = False, num_points: int = 2048,
                 pairs_per_epoch: int = 500, val_limit: int | None = None, seed: int = 0, num_workers: int = 0,
                 scene_share: float | None = None, lidar_sweeps: bool = True, pair_voxel: bool = False):
        super().__init__()
        if root is None and not tiny:
            raise ValueError("RegistrationDataModule needs root (omnisense data make registration-pairs) or tiny=True")
        self.root, self.tiny = root, tiny
        self.num_points, self.pairs_per_epoch, self.val_limit = num_points, pairs_per_epoch, val_limit
        self.seed, self.num_workers = seed, num_workers
        self.scene_share, self.lidar_sweeps, self.pair_voxel = scene_share, lidar_sweeps, pair_voxel
        self._tmp: tempfile.TemporaryDirectory | None = None

    def setup(self, stage: str | None = None) -> None:
        root = self.root
        if self.tiny:
            self._tmp = tempfile.TemporaryDirectory(prefix="omnisense-regpairs-")
            root = self._tmp.name
            make_registration_pairs(Path(root), seed=self.seed, size="tiny")
            self.num_points, self.pairs_per_epoch = min(self.num_points, 512), min(self.pairs_per_epoch, 4)
        self.train_set = GeneratedPairs(Path(root), num_points=self.num_points, length=self.pairs_per_epoch,
                                        seed=self.seed, scene_share=self.scene_share,
                                        lidar_sweeps=self.lidar_sweeps, pair_voxel=self.pair_voxel)
        self.val_set = PairListDataset(Path(root) / "val.csv", num_points=self.num_points, limit=self.val_limit)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=1, sampler=EpochSampler(self.train_set), collate_fn=_first,
                          num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=1, collate_fn=_first, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return self.val_dataloader()


# ---------------------------------------------------------------------------------------------------------------
# Evaluation (validation, test, tools/roitr_eval.py)


@torch.no_grad()
def evaluate_pair(model: nn.Module, item: dict, verify: bool = True) -> dict:
    """Register one canonical pair as `omnisense register` does (matching + LGR, its hypotheses verified by the
    descriptors unless `verify` is False): its RRE (degrees), RTE and extent (canonical units) and IR
    (correspondences within 0.1 canonical m of the truth)."""
    out = model(item["src_points"], item["src_normals"], item["tgt_points"], item["tgt_normals"])
    m = model.match(out)
    est = lgr_transform(m, descriptors=out if verify else None).double().cpu().numpy()
    gt = item["transform"].double().cpu().numpy()
    ir = metrics.inlier_ratio(m.src_corr.cpu().numpy(), m.tgt_corr.cpu().numpy(), gt, 4 * CANONICAL_VOXEL)
    return {"rre": metrics.rotation_error(est, gt), "rte": metrics.translation_error(est, gt),
            "extent": item["extent"], "ir": ir}


@torch.no_grad()
def registration_record(model: nn.Module, item: dict) -> dict:
    """A prediction record for one pair: the estimated source-to-target transform (4 x 4, in the pair's own unit:
    the canonical scale undone) and the number of correspondences it rests on."""
    out = model(item["src_points"], item["src_normals"], item["tgt_points"], item["tgt_normals"])
    m = model.match(out)
    est = lgr_transform(m, descriptors=out).double().cpu()
    est[:3, 3] /= item["scale"]
    return {"transform": [[round(v, 6) for v in row] for row in est.tolist()], "correspondences": int(len(m.src_corr))}


def summarise_pairs(rows: list[dict]) -> dict:
    """RR (RRE < 5 degrees and RTE < 5% of the extent), median RRE and relative RTE, mean IR and FMR of
    `evaluate_pair` results."""
    rre = np.array([r["rre"] for r in rows])
    rte = np.array([r["rte"] for r in rows])
    ext = np.array([r["extent"] for r in rows])
    ir = np.array([r["ir"] for r in rows])
    return {"pairs": len(rows), "rr": metrics.registration_recall(rre, rte, max_rre=5.0, max_rte=0.05 * ext),
            "rre": float(np.median(rre)), "rte": float(np.median(rte / ext)), "ir": float(ir.mean()),
            "fmr": metrics.feature_match_recall(ir)}


# ---------------------------------------------------------------------------------------------------------------
# The task


class RegistrationTask(pl.LightningModule):
    """RoITr training: overlap-aware circle loss on nodes + NLL on the Sinkhorn matrices (weights 1:1).

    Validation registers each pair as `omnisense register` does (`evaluate_pair`) and logs val/rr (RRE < 5 degrees
    and RTE < 5% of the target's extent), val/rre, val/rte (medians), val/ir (inliers < 0.1 canonical m) and val/fmr.

    Args:
        model: a `perception3d.models.roitr.RoITr`.
        lr, weight_decay: Adam (official 1e-4, 1e-6); lr_decay: exponential per epoch (official 0.95).
        init_weights: a weights file (.safetensors) to start from, e.g. to continue training shipped weights
            with a fresh optimiser and schedule.
    """

    def __init__(self, model: nn.Module, lr: float = 1e-4, weight_decay: float = 1e-6, lr_decay: float = 0.95,
                 coarse_weight: float = 1.0, fine_weight: float = 1.0, positive_overlap: float = 0.1,
                 positive_radius: float = 0.05, init_weights: str | None = None):
        super().__init__()
        self.model = model
        if init_weights:
            from omnisense.weights import load_model_weights, read_weights

            load_model_weights(self.model, read_weights(init_weights)[0], source=init_weights)
        self.lr, self.weight_decay, self.lr_decay = lr, weight_decay, lr_decay
        self.coarse_weight, self.fine_weight = coarse_weight, fine_weight
        self.positive_overlap, self.positive_radius = positive_overlap, positive_radius
        self._pairs: dict[str, list[dict]] = {}

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        out = self.model(batch["src_points"], batch["src_normals"], batch["tgt_points"], batch["tgt_normals"])
        t = batch["transform"]
        m = self.model.match(out, gt_transform=t)
        coarse = coarse_circle_loss(out.tgt_node_feats, out.src_node_feats, m.gt_node_corr, m.gt_node_overlaps,
                                    positive_overlap=self.positive_overlap)
        src_knn = m.src_patches.gather(out.src_points)[m.src_node_idx]
        tgt_knn = m.tgt_patches.gather(out.tgt_points)[m.tgt_node_idx]
        fine = fine_nll_loss(m.log_scores, tgt_knn, src_knn, m.tgt_patches.knn_masks[m.tgt_node_idx],
                             m.src_patches.knn_masks[m.src_node_idx], t, positive_radius=self.positive_radius)
        return {"loss": self.coarse_weight * coarse + self.fine_weight * fine, "coarse": coarse, "fine": fine}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self.losses(batch)
        for k, v in losses.items():
            self.log(f"train/{k}", v, prog_bar=k == "loss", batch_size=1)
        return losses["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._pairs.setdefault("val", []).append(evaluate_pair(self.model, batch))

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._pairs.setdefault("test", []).append(evaluate_pair(self.model, batch))

    def _summarise(self, stage: str) -> None:
        if stage not in self._pairs:
            return
        rows = gather_samples(self, self._pairs.pop(stage), stage)  # every pair of the split once, in order
        if not rows:
            return
        for key, value in summarise_pairs(rows).items():
            if key != "pairs":
                self.log(f"{stage}/{key}", value, prog_bar=key == "rr")

    def on_validation_epoch_end(self) -> None:
        self._summarise("val")

    def on_test_epoch_end(self) -> None:
        self._summarise("test")

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        return [registration_record(self.model, batch)]

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=self.lr_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


# ---------------------------------------------------------------------------------------------------------------
# Spinning-lidar sweeps (roitr_small_lidar)

# Held out of the sweep training entirely: the sensors of `omnisense bench registration --lidar` ("ouster-samples":
# OS-1-128, OS-0-32, OS-2-128). The training sensors come from "ouster-training"; the airborne tiles leave out
# autzen_trim (the object benchmark's optional outdoor scan).
SWEEP_BENCH_SENSORS = ("OS-1-128", "OS-0-32", "OS-2-128")
# The other laspy tiles do not make pairs: append-bug is two clusters 900 m apart (its windows need not overlap),
# simple.las has 1065 points over 4 km, vegetation_1_3 is a 6 m patch.
TRAIN_TILES = ("file_with_both_wkt_and_geotiff_vlrs.las",)
SIM_TRAIN_STEP = (1.2, 0.1, 0.04)  # metres forward, metres left, radians of yaw between simulated training sweeps
SWEEP_GROUPS = {"simulated": 0.45, "ouster": 0.45, "tile": 0.1}  # the share of training pairs from each kind of base


def _tiny_sweep(rng: np.random.Generator) -> np.ndarray:
    """Offline stand-in for tests: a 60 m ground disc with a dozen boxes, 6000 points (metres)."""
    r, a = 60 * np.sqrt(rng.uniform(0, 1, 4000)), rng.uniform(0, 2 * np.pi, 4000)
    ground = np.stack([r * np.cos(a), r * np.sin(a), 0.05 * rng.normal(size=4000)], 1)
    boxes = []
    for _ in range(12):
        centre, size = rng.uniform(-40, 40, 3) * [1, 1, 0], rng.uniform(1, 6, 3)
        p = rng.uniform(-0.5, 0.5, (170, 3))
        p[np.arange(170), rng.integers(0, 3, 170)] = rng.choice([-0.5, 0.5], 170)
        boxes.append(p * size + centre + [0, 0, size[2] / 2])
    return np.concatenate([ground, *boxes])


def _ouster_training_sweeps(max_frames: int = 3) -> dict[str, np.ndarray]:
    """name -> sweep [N, 3] (metres, sensor frame) of the training sensors' captures, up to `max_frames` each."""
    import omnisense
    from perception3d.sensors import read_sweeps

    root = Path(omnisense.sample_data("ouster-training"))
    sweeps = {}
    for path in sorted([*root.rglob("*.pcap"), *root.rglob("*.osf")]):
        if any(s in path.name for s in SWEEP_BENCH_SENSORS):  # never a benchmark sensor
            raise ValueError(f"{path}: a benchmark sensor among the training captures")
        for k, sweep in enumerate(read_sweeps(path)):
            if k >= max_frames:
                break
            xyz = sweep.xyz.astype(np.float64)
            sweeps[f"ouster_{path.stem}_{k}"] = xyz[np.isfinite(xyz).all(1) & (np.linalg.norm(xyz, axis=1) > 0.5)]
    return sweeps


def make_sweep_pairs(out: Path, *, seed: int, size: str) -> dict:
    """`omnisense data make sweep-pairs`: base sweep pairs for `roitr_small_lidar` and fixed validation pairs.

    Bases (`bases.json`: kind, source and target files, source -> target transform): per simulated scene, three
    sweeps of the detection simulator `SIM_TRAIN_STEP` apart along a trajectory (pairs 1->0, 2->1, 2->0; the
    benchmark's scenes use other seeds); each real sweep of the training sensors ("ouster-training", none of the
    benchmark's sensors) against a fresh thinned, noisy copy of itself; the laspy airborne tiles (two overlapping
    windows per draw). tiny: two procedural street discs (no download). Validation (`val.csv`): low-overlap pairs
    (a 90-degree sector of the source) of simulated and real training sweeps under uniform rotations.
    """
    from perception3d.detection.simulator import simulate_frame
    from perception3d.registration.pairs import random_sweep_pair, self_pair_copy, SweepPairConfig

    out = Path(out)
    (out / "sweeps").mkdir(parents=True, exist_ok=True)
    (out / "val").mkdir(exist_ok=True)
    clouds: dict[str, np.ndarray] = {}
    bases: list[dict] = []

    def add(name: str, pts: np.ndarray) -> str:
        clouds[name] = pts
        np.save(out / "sweeps" / f"{name}.npy", pts.astype(np.float32))
        return f"sweeps/{name}.npy"

    if size == "tiny":
        rng = np.random.default_rng([seed, 61])
        for k in range(2):
            f = add(f"tiny_{k}", _tiny_sweep(rng))
            bases.append({"kind": "ouster", "source": f, "target": f, "transform": np.eye(4).tolist(), "copy": True})
    else:
        scenes = {"small": 8, "full": 24}[size]
        for k in range(scenes):
            frames = [simulate_frame(np.random.default_rng([seed, 60, k]), sensor=tuple(j * v for v in SIM_TRAIN_STEP))
                      for j in range(3)]
            files = [add(f"sim_{k:02d}_{j}", f.points[:, :3].astype(np.float64)) for j, f in enumerate(frames)]
            poses = [np.asarray(f.meta["sensor_pose"], np.float64) for f in frames]
            for s, t in ((1, 0), (2, 1), (2, 0)):
                bases.append({"kind": "simulated", "source": files[s], "target": files[t],
                              "transform": (np.linalg.inv(poses[t]) @ poses[s]).tolist(), "copy": False})
        for name, pts in _ouster_training_sweeps().items():
            f = add(name, pts)
            bases.append({"kind": "ouster", "source": f, "target": f, "transform": np.eye(4).tolist(), "copy": True})
        import omnisense
        from perception3d.io import read_points

        tiles = Path(omnisense.sample_data("laspy-samples"))
        for name in TRAIN_TILES:
            data = read_points(tiles / name)
            pts = data.xyz.astype(np.float64)
            f = add(f"tile_{Path(name).stem}", pts - pts.mean(0))
            bases.append({"kind": "tile", "source": f, "target": f, "transform": np.eye(4).tolist(), "copy": False})
    import json

    (out / "bases.json").write_text(json.dumps(bases, indent=1))
    # Validation: low overlap (a 90-degree sector of the source), two pairs from each swept kind.
    val_rng = np.random.default_rng([seed, 62])
    entries = []
    low = SweepPairConfig(sector_share=1.0, sector=(90.0, 90.0))
    for kind in ("simulated", "ouster"):
        for b in [b for b in bases if b["kind"] == kind][:2 if size != "tiny" else 1]:
            src, tgt = clouds[Path(b["source"]).stem], clouds[Path(b["target"]).stem]
            transform = np.asarray(b["transform"])
            if b["copy"]:
                src, tgt, transform = self_pair_copy(src, val_rng)
            src, tgt, t = random_sweep_pair(src, tgt, transform, val_rng, low)
            i = len(entries)
            s, g = out / "val" / f"{i:04d}_{kind}_src.npy", out / "val" / f"{i:04d}_{kind}_tgt.npy"
            np.save(s, src.astype(np.float32))
            np.save(g, tgt.astype(np.float32))
            entries.append(PairEntry(s, g, t))
    write_pair_list(out / "val.csv", entries)
    return {"root": str(out), "bases": len(bases), "kinds": {k: sum(b["kind"] == k for b in bases) for k in SWEEP_GROUPS},
            "sweeps": sorted(clouds), "val_pairs": len(entries), "seed": seed, "size": size,
            "held_out_sensors": list(SWEEP_BENCH_SENSORS)}


class SweepPairs(Dataset):
    """Fresh sweep pairs drawn from `bases.json` (`make_sweep_pairs`): item i of epoch e is seeded by (seed, e, i).

    A base kind is drawn by `SWEEP_GROUPS` (kinds absent from the set are skipped), then a base of it: simulated
    consecutive sweeps as they are, a real sweep against a fresh thinned, noisy copy of itself, an airborne tile as
    two overlapping windows (`overlapping_crops`, 60-85% of the tile each: 20-70% shared); then
    `random_sweep_pair` (a sector crop of the source with probability `config.sector_share`, uniform rotation). Each
    pair is voxelised as `omnisense register` does: the voxel that leaves about `num_points` target points.
    """

    def __init__(self, root: Path, *, num_points: int, length: int, seed: int, config=None):
        import json

        from perception3d.registration.pairs import SweepPairConfig

        root = Path(root)
        self.bases = json.loads((root / "bases.json").read_text())
        files = sorted({b[k] for b in self.bases for k in ("source", "target")})
        self.clouds = {f: np.load(root / f).astype(np.float64) for f in files}
        kinds = [k for k in SWEEP_GROUPS if any(b["kind"] == k for b in self.bases)]
        weights = np.array([SWEEP_GROUPS[k] for k in kinds])
        self.kinds, self.kind_probs = kinds, weights / weights.sum()
        self.num_points, self.length, self.seed = num_points, length, seed
        self.config = config if config is not None else SweepPairConfig()
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def pair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from perception3d.registration.pairs import overlapping_crops, random_sweep_pair, self_pair_copy

        kind = self.kinds[int(rng.choice(len(self.kinds), p=self.kind_probs))]
        options = [b for b in self.bases if b["kind"] == kind]
        b = options[int(rng.integers(len(options)))]
        src, tgt, transform = self.clouds[b["source"]], self.clouds[b["target"]], np.asarray(b["transform"])
        if kind == "tile":
            return overlapping_crops(src, rng, window=rng.uniform(0.6, 0.85), translation=0.2)
        if b["copy"]:
            src, tgt, transform = self_pair_copy(src, rng, keep=rng.uniform(0.5, 0.9))
        return random_sweep_pair(src, tgt, transform, rng, self.config)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        src, tgt, t = self.pair(rng)
        # Centred on the target's centroid, as `register_roitr` does: x_t - c = R (x_s - c) + (t + R c - c).
        c = tgt.mean(0)
        t = t.copy()
        t[:3, 3] += t[:3, :3] @ c - c
        src, tgt = src - c, tgt - c
        voxel = auto_voxel_size(tgt, self.num_points)
        return _canonical_item(src, tgt, t, voxel, self.num_points, rng)


class SweepDataModule(RegistrationDataModule):
    """Sweep pairs for `roitr_small_lidar` (`omnisense data make sweep-pairs`); the arguments of
    RegistrationDataModule (scene_share, lidar_sweeps and pair_voxel do not apply: every pair is a sweep pair,
    voxelised as at test time)."""

    def setup(self, stage: str | None = None) -> None:
        root = self.root
        if self.tiny:
            self._tmp = tempfile.TemporaryDirectory(prefix="omnisense-sweeppairs-")
            root = self._tmp.name
            make_sweep_pairs(Path(root), seed=self.seed, size="tiny")
            self.num_points, self.pairs_per_epoch = min(self.num_points, 512), min(self.pairs_per_epoch, 4)
        self.train_set = SweepPairs(Path(root), num_points=self.num_points, length=self.pairs_per_epoch,
                                    seed=self.seed)
        self.val_set = PairListDataset(Path(root) / "val.csv", num_points=self.num_points, limit=self.val_limit)
