"""The registration part of `omnisense demo`."""

from __future__ import annotations

from pathlib import Path


def demo(ctx):
    """Demo part: the CGAL kitten scan against a rotated (uniform SO(3)), partial, noisy copy of itself."""
    import numpy as np

    from omnisense.data import sample_data
    from omnisense.demo import DemoSection
    from omnisense.models import load_model
    from perception3d.io import read_points
    from perception3d.registration import plot_registration, register
    from perception3d.registration.metrics import extent, rotation_error, translation_error
    from perception3d.registration.pairs import make_pair

    scan = read_points(next(Path(sample_data("cgal")).rglob("points_3/kitten.xyz"))).xyz.astype(np.float64)
    source, target, gt = make_pair(scan, np.random.default_rng(ctx.seed))
    rows, images = [], []
    model, meta = load_model("roitr_small_cgal", device=ctx.device)
    for method in ("roitr", "fpfh"):
        for refine in ("none", "icp"):
            r = register(source, target, method=method, model=model, refine=refine, spec=meta.transforms(),
                         seed=ctx.seed, device=ctx.device)
            t = r.transform
            rre, rte = rotation_error(t, gt), translation_error(t, gt)
            ok = rre < 5 and rte < 0.05 * extent(target)
            rows.append(f"| {r.method} | {rre:.2f} | {rte / extent(target) * 100:.2f}% | "
                        f"{r.num_correspondences} | {r.runtime_s:.2f} | {'yes' if ok else 'no'} |")
            if refine == "icp":
                images.append(plot_registration(source, target, t, ctx.out / f"kitten_{method}.png",
                                                f"kitten scan, {r.method}: RRE {rre:.1f} deg"))
    markdown = ("The CGAL kitten scan (real, 5,210 points) against a copy of itself under a uniform random "
                "rotation, cropped to two partial views with noise and thinning.\n\n"
                "| method | RRE (deg) | RTE (% of extent) | correspondences | time (s) | registered |\n"
                "|---|---|---|---|---|---|\n" + "\n".join(rows))
    summary = "; ".join(f"{row.split('|')[1].strip()} {'ok' if row.rstrip('| ').endswith('yes') else 'failed'}"
                        for row in rows)
    return DemoSection("3D registration (RoITr, FPFH + RANSAC)", markdown, images, f"kitten: {summary}")
