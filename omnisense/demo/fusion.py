"""The fusion part of `omnisense demo`."""

from __future__ import annotations


def demo(ctx):
    """The fusion part of `omnisense demo`: a generated multi-view recording fused by the shipped MultiTSF."""
    import numpy as np

    from fusion.inference import fuse_recording, plot_timeline
    from fusion.metrics import frame_map
    from fusion.recordings import make_recording
    from fusion.view import write_fusion_overlay, write_recording_view
    from omnisense.demo import DemoSection
    from omnisense.models import load_model

    model, meta = load_model("multitsf_small_synthetic", device=ctx.device, task="fusion")
    rec_dir = ctx.out / "recording"
    ctx.step("generating a 12 s recording (4 cameras with audio, a lidar) ...")
    manifest = make_recording(rec_dir, seed=10_000 + ctx.seed, duration=12.0)
    ctx.step("fusing ...")
    result = fuse_recording(model, rec_dir, spec=meta.transforms(), classes=meta.classes)
    ctx.step("writing the 3D view and the overlay video ...")
    links = [("3D view: room, lidar over time, cameras", write_recording_view(ctx.out / "view.html", rec_dir, result)),
             ("overlay video: views and frame scores", write_fusion_overlay(ctx.out / "overlay.mp4", rec_dir, result))]
    picture = plot_timeline(result, ctx.out / "timeline.png")
    classes, times = result["classes"], np.asarray(result["times"])
    truth = np.zeros((len(times), len(classes)))
    for tr in manifest["tricks"]:
        for lab in tr["labels"]:
            truth[(times >= tr["start"]) & (times <= tr["end"]), classes.index(lab)] = 1
    fm = frame_map(np.asarray(result["frame_scores"])[None], truth[None])
    true_labels = sorted({lab for tr in manifest["tricks"] for lab in tr["labels"]})
    cams = [s for s in manifest["sensors"] if s["kind"] == "video"]
    cam_text = ", ".join("%g fps, clock offset %+.2f s" % (c["fps"], c["clock"]["offset"]) for c in cams)
    md = (f"A synthetic room recorded by {len(cams)} cameras ({cam_text}), "
          "each with its microphone, and a 10 Hz lidar on its own clock, written as mp4 files with AAC audio and "
          "`.npy` sweeps, then read back, aligned on a 2.5 Hz grid and fused by the shipped MultiTSF "
          f"(`{meta.path.name}`, trained on the synthetic recordings).\n\n"
          f"- sequence labels predicted: **{', '.join(result['sequence_labels']) or 'none'}**; "
          f"true: {', '.join(true_labels)}\n- frame mAP on this one recording: {fm:.1f}\n")
    command = ("omnisense fuse fusion/recording --output fusion/result.jsonl --plot fusion/timeline.png "
               "--view fusion/view.html "
               "--overlay fusion/overlay.mp4")
    return DemoSection(title="Multi-view, multi-modal fusion (MultiTSF)", markdown=md, images=[picture],
                       summary=f"fused {len(cams)} views + audio + lidar; frame mAP {fm:.1f} on one recording",
                       links=links, command=command)
