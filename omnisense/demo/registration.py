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
    from perception3d.registration.view import write_aligned_ply, write_registration_view

    scan = read_points(next(Path(sample_data("cgal")).rglob("points_3/kitten.xyz"))).xyz.astype(np.float64)
    source, target, gt = make_pair(scan, np.random.default_rng(ctx.seed))
    # the pair as files, so the command under the section reproduces it
    np.savetxt(ctx.out / "source.xyz", source, fmt="%.6f")
    np.savetxt(ctx.out / "target.xyz", target, fmt="%.6f")
    rows, images, links = [], [], []
    model, meta = load_model("roitr_small_cgal", device=ctx.device)
    for method in ("roitr", "fpfh"):
        for refine in ("none", "icp"):
            r = register(source, target, method=method, model=model, refine=refine, spec=meta.transforms(),
                         seed=ctx.seed, device=ctx.device)
            ctx.step(f"{r.method}: {r.runtime_s:.1f} s")
            t = r.transform
            rre, rte = rotation_error(t, gt), translation_error(t, gt)
            ok = rre < 5 and rte < 0.05 * extent(target)
            rows.append(f"| {r.method} | {rre:.2f} | {rte / extent(target) * 100:.2f}% | "
                        f"{r.num_correspondences} | {r.runtime_s:.2f} | {'yes' if ok else 'no'} |")
            if refine == "icp":
                images.append(plot_registration(source, target, t, ctx.out / f"kitten_{method}.png",
                                                f"kitten scan, {r.method}: RRE {rre:.1f} deg"))
                view = write_registration_view(ctx.out / f"view_{method}.html", source, target, t,
                                               title=f"kitten scan, {r.method}: RRE {rre:.1f} deg")
                links.append((f"3D view, {r.method}", view))
                if method == "roitr":
                    aligned = write_aligned_ply(ctx.out / "aligned.ply", source, t, target)
                    links.append(("aligned clouds (PLY)", aligned))
    markdown = ("The CGAL kitten scan (real, 5,210 points) against a copy of itself under a uniform random "
                "rotation, cropped to two partial views with noise and thinning.\n\n"
                "| method | RRE (deg) | RTE (% of extent) | correspondences | time (s) | registered |\n"
                "|---|---|---|---|---|---|\n" + "\n".join(rows))
    summary = "; ".join(f"{row.split('|')[1].strip()} {'ok' if row.rstrip('| ').endswith('yes') else 'failed'}"
                        for row in rows)
    command = ("omnisense register registration/source.xyz registration/target.xyz --refine icp "
               "--output registration/result.jsonl --view registration/view.html "
               "--save-aligned registration/aligned.ply "
               "--plot registration/kitten.png")
    return DemoSection("3D registration (RoITr, FPFH + RANSAC)", markdown, images, f"kitten: {summary}", links=links,
                       command=command)
