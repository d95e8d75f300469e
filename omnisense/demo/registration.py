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
    ouster_md, ouster_summary, ouster_command = _ouster_sweeps(ctx)
    markdown += "\n\n" + ouster_md
    summary = f"kitten: {summary}; {ouster_summary}"
    if ouster_command:
        command += "\n" + ouster_command
    return DemoSection("3D registration (RoITr, FPFH + RANSAC)", markdown, images, summary, links=links,
                       command=command)


OUSTER_CAPTURE = "pcaps/OS-1-128_v2.3.0_1024x10_lb_n3.pcap"  # of the sample data "ouster-samples": 3 sweeps
OUSTER_POSES = "pcaps/OS-1-128_v2.3.0_1024x10_lb_n3_poses_kitti.txt"  # the capture's KITTI poses, as shipped


def _ouster_sweeps(ctx) -> tuple[str, str, str]:
    """The three consecutive sweeps of the real Ouster OS-1-128 capture registered in turn (1 -> 0, 2 -> 1) with FPFH +
    RANSAC + ICP and compared with the capture's poses: (Markdown, summary, command); a line saying why not when the
    capture cannot be read."""
    import numpy as np

    from fusion._errors import FusionError
    from omnisense._errors import DataSourceError
    from omnisense.data import sample_data
    from perception3d._errors import Perception3DError
    from perception3d.registration import register
    from perception3d.registration.metrics import rotation_error, translation_error
    from perception3d.sensors import read_kitti_poses, read_sweeps, relative_pose

    try:
        root = sample_data("ouster-samples")
        sweeps = [s.xyz.astype(np.float64) for s in read_sweeps(root / OUSTER_CAPTURE)]
        poses = read_kitti_poses(root / OUSTER_POSES)
    except (DataSourceError, FusionError, Perception3DError) as exc:
        return f"Real Ouster sweeps: not shown ({exc}).", "Ouster sweeps not shown", ""
    rows, ok = [], 0
    for source, target in ((1, 0), (2, 1)):
        r = register(sweeps[source], sweeps[target], method="fpfh", refine="icp", voxel_size=0.5, seed=ctx.seed)
        ctx.step(f"Ouster sweep {source} -> {target}: {r.runtime_s:.1f} s")
        truth = relative_pose(poses, source, target)
        rre, rte = rotation_error(r.transform, truth), translation_error(r.transform, truth)
        moved = float(np.linalg.norm(truth[:3, 3]))
        ok += rre < 1 and rte < 0.05
        rows.append(f"| {source} -> {target} | {len(sweeps[source]):,} / {len(sweeps[target]):,} | {moved:.3f} | "
                    f"{rre:.3f} | {rte:.3f} | {r.runtime_s:.1f} |")
    markdown = ("The three consecutive sweeps of a real Ouster OS-1-128 capture (sample data `ouster-samples`, "
                "10 Hz, on a moving car) registered in turn with FPFH + RANSAC + ICP (voxel 0.5 m) and compared "
                "with the capture's KITTI poses.\n\n"
                "| sweeps | points | moved (m) | RRE (deg) | RTE (m) | time (s) |\n|---|---|---|---|---|---|\n"
                + "\n".join(rows))
    capture = "~/.cache/omnisense/data/ouster-samples/" + OUSTER_CAPTURE
    command = "\n".join(f"omnisense register {capture} {capture} --frames {s} {t} --method fpfh --voxel-size 0.5 "
                         f"--refine icp" for s, t in ((1, 0), (2, 1)))
    return markdown, f"Ouster sweeps {ok}/2 within 1 deg and 5 cm of the poses", command
