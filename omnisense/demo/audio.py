"""The audio part of `omnisense demo`."""

from __future__ import annotations

from pathlib import Path

from omnisense._io import atomic_write


def _write_video_with_audio(path: Path, waveform, sr: int, seconds: float) -> Path:
    """A small mp4 (grey frames) whose AAC track is `waveform` (mono, `sr` Hz): a video input for the demo."""
    import av
    import numpy as np

    samples = waveform[: int(seconds * sr)].numpy().astype(np.float32)

    def encode(tmp: Path) -> None:
        with av.open(str(tmp), "w", format="mp4") as container:
            video = container.add_stream("mpeg4", rate=10)
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
            audio = container.add_stream("aac", rate=sr)
            audio.layout = "mono"
            for i in range(max(1, int(len(samples) / sr * 10))):
                frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 + 10 * i % 200, np.uint8), format="rgb24")
                for packet in video.encode(frame):
                    container.mux(packet)
            for packet in video.encode():
                container.mux(packet)
            frame = av.AudioFrame.from_ndarray(samples[None], format="fltp", layout="mono")
            frame.sample_rate = sr
            for packet in audio.encode(frame):
                container.mux(packet)
            for packet in audio.encode(None):
                container.mux(packet)

    return atomic_write(path, encode)



def demo(ctx):
    """Demo part: classify held-out real recordings (sonic-pi samples) and one video's audio track."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from omnisense import sample_data
    from omnisense.demo import DemoSection, rule_answer
    from omnisense.models import load_model
    from video.audio.datasets import prefix_items, split_by_file
    from video.audio.frontend import kaldi_fbank
    from video.audio.inference import AudioClassifier
    from video.audio.io import load_audio
    from video.rejection import Rejection

    weights = "audio_cnn_small_sonic_pi"
    model, meta = load_model(weights, device=ctx.device)
    classifier = AudioClassifier(model, meta.transforms(), meta.classes, rejection=Rejection.from_dict(meta.rejection))
    data_args = (meta.config or {}).get("data", {}).get("init_args", {})
    root = sample_data("sonic-pi-samples")
    items, names = prefix_items(root)
    split = split_by_file(items, test_fraction=data_args.get("test_fraction", 0.25),
                          val_fraction=data_args.get("val_fraction", 0.15), seed=data_args.get("seed", 0))
    chosen, seen = [], set()
    for item in split["test"]:  # one held-out file per class, first eight classes
        if item.label not in seen and len(chosen) < 8:
            chosen.append(item)
            seen.add(item.label)
    rows, correct = [], 0
    fig, axes = plt.subplots(2, 4, figsize=(14, 6))
    for ax, item in zip(axes.flat, chosen):
        result = classifier.classify_file(item.path, topk=3, reject=False)  # the raw top-3 ...
        answer = rule_answer(result["top"][0]["class"], result["rejection"])  # ... and what the rule answers
        truth = names[item.label]
        hit = result["top"][0]["class"] == truth
        correct += hit
        top = ", ".join(f"{r['class']} {r['probability']:.2f}" for r in result["top"])
        rows.append(f"| `{item.path.name}` | {result['duration_s']:.2f} | {truth} | {top} | {'yes' if hit else 'no'} "
                    f"| {answer} |")
        wave, _ = load_audio(item.path)
        ax.imshow(kaldi_fbank(wave).T.numpy(), origin="lower", aspect="auto", cmap="magma")
        ax.set_title(f"{item.path.name}\ntrue {truth} / predicted {result['top'][0]['class']}", fontsize=9)
        ax.set_xlabel("frame (10 ms)")
        ax.set_ylabel("mel bin")
    for ax in list(axes.flat)[len(chosen):]:
        ax.axis("off")
    fig.tight_layout()
    picture = ctx.out / "audio_fbanks.png"
    try:
        atomic_write(picture, lambda tmp: fig.savefig(tmp, format="png", dpi=80))
    finally:
        plt.close(fig)

    source = chosen[0]
    wave, sr = load_audio(source.path)
    video = _write_video_with_audio(ctx.out / "clip_with_audio.mp4", wave, sr, seconds=2.0)
    from_video = classifier.classify_file(video, topk=3)
    test = meta.metrics
    video_top = ", ".join(f"{r['class']} {r['probability']:.2f}" for r in from_video["top"])
    md = "\n".join([
        f"The shipped CNN (`{weights}`, {sum(p.numel() for p in model.parameters()):,} "
        f"parameters) classifies real recordings of the sonic-pi sample library into {len(names)} classes. "
        "The files below are from its held-out test split (split by file: the model never heard them).",
        "",
        "| file | seconds | true class | top-3 | top-1 correct | answer (with the rejection rule) |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"The same weights on the audio track of a video (`{video.name}`, the recording `{source.path.name}` muxed "
        f"as AAC into an mp4): {video_top}.",
        "",
        f"Held-out accuracy recorded with the weights: test top-1 {test.get('test/acc1', float('nan')):.3f} "
        f"on {test.get('test/files', '?')} files (chance {1 / len(names):.3f}).",
    ])
    command = (f"omnisense classify-audio {chosen[0].path} --weights {weights} --output audio/result.jsonl\n"
               f"omnisense classify-audio audio/{video.name} --weights {weights} --output audio/video_result.jsonl")
    return DemoSection(title="Audio: classify real recordings (and a video's audio track)", markdown=md, command=command,
                       images=[picture], summary=f"{correct}/{len(chosen)} held-out real recordings correct")
