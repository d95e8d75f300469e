"""The audio DataModule, weights export and `omnisense classify-audio` (library calls and the CLI)."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from omnisense._errors import WeightsError
from omnisense.cli import main
from omnisense.demo.audio import _write_video_with_audio
from omnisense.models import load_model
from omnisense.train.audio import AudioClassificationData
from video import MediaFileError
from video.audio.datasets import synth_clip
from video.audio.inference import AudioClassifier

SHIPPED_EVENTS = Path(__file__).resolve().parents[2] / "omnisense" / "shipped" / "audio_cnn_small_audio_events.safetensors"


def _classifier(weights) -> AudioClassifier:
    model, meta = load_model(weights, task="audio_classification")
    return AudioClassifier(model, meta.transforms(), meta.classes)
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "audio"


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # many small ops on a busy 2-core machine
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("dataset", ["folder", "sonic-pi", "esc50"])
def test_datamodule_tiny_batches(dataset):
    data = AudioClassificationData(tiny=True, dataset=dataset, batch_size=4, clip_seconds=0.5)
    data.setup()
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (4, 50, 128) and y.dtype == torch.long
    assert next(iter(data.test_dataloader()))[0].shape[1:] == (50, 128)
    spec = data.state_dict()["input_spec"]
    assert spec["target_frames"] == 50 and spec["std"] > 0
    assert len(data.class_names) == {"folder": 8, "sonic-pi": 12, "esc50": 8}[dataset]


@pytest.fixture(scope="module")
def tone_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    wave = synth_clip(("tone",), rng, seconds=1.0, snr_db=20)
    sf.write(folder / "tone.wav", wave, 16_000)
    sf.write(folder / "tone2s.wav", np.tile(wave, 2), 16_000)
    sf.write(folder / "tone_44k_stereo.flac", np.stack([wave, wave], 1).repeat(2, axis=0), 32_000)
    _write_video_with_audio(folder / "tone.mp4", torch.from_numpy(np.tile(wave, 2)), 16_000, seconds=2.0)
    return folder


@pytest.mark.skipif(not SHIPPED_EVENTS.exists(), reason="the shipped audio-events weights are not in this checkout")
def test_classifier_hears_a_tone_in_files_and_video(tone_files):
    classifier = _classifier(SHIPPED_EVENTS)
    for name in ("tone.wav", "tone_44k_stereo.flac", "tone.mp4"):
        result = classifier.classify_file(tone_files / name, topk=3)
        assert result["top"][0]["class"] == "tone", (name, result["top"])
        assert len(result["top"]) == 3 and sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    # 2 s = 198 frames: clips start at frames 0 and 50, plus the tail clip at 98.
    assert classifier.classify_file(tone_files / "tone2s.wav")["clips"] == 3


@pytest.mark.skipif(not SHIPPED_EVENTS.exists(), reason="the shipped audio-events weights are not in this checkout")
def test_cli_writes_json_and_reports_bad_files(tone_files, tmp_path, capsys):
    out = tmp_path / "result.jsonl"
    assert main(["classify-audio", str(tone_files / "tone.wav"), "--weights", str(SHIPPED_EVENTS), "--output", str(out)]) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["schema"] == "omnisense.audio_classification/1" and record["top"][0]["class"] == "tone"
    assert set(record["top"][0]) == {"class", "probability"}
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    assert main(["classify-audio", str(tmp_path / "broken.wav"), "--weights", str(SHIPPED_EVENTS)]) == 2
    assert "broken.wav" in capsys.readouterr().err


def test_classify_audio_refuses_weights_of_another_task(tmp_path, capsys):
    wave = tmp_path / "a.wav"
    sf.write(wave, np.zeros(1600, np.float32), 16_000)
    assert main(["classify-audio", str(wave), "--weights", "gpsformer_elite_shapes"]) == 2
    assert "holds classification weights" in capsys.readouterr().err
    with pytest.raises(WeightsError, match="not audio_classification weights"):
        _classifier("gpsformer_elite_shapes")


def test_export_evaluates_and_round_trips(tmp_path, tool):
    config = yaml.safe_load((CONFIGS / "audio_cnn_small_audio_events.yaml").read_text())
    config["data"]["init_args"].update(root=None, tiny=True)
    config["model"]["init_args"]["model"]["init_args"].update(widths=[8, 16], blocks_per_stage=1)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    from video.models.audio_cnn import AudioCNN

    model = AudioCNN(num_classes=8, widths=(8, 16), blocks_per_stage=1, drop_rate=0.2)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir()
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "global_step": 3}, ckpt)
    result = tool("export_audio_weights").export_weights(tmp_path / "config.yaml", ckpt, tmp_path / "out.safetensors")
    assert 0.0 <= result["metrics"]["test/acc1"] <= 1.0 and result["metrics"]["test/files"] == 16
    classifier = _classifier(Path(result["path"]))
    assert classifier.classes[0] == "background" and classifier.spec.target_frames == 100
    with pytest.raises(MediaFileError):
        classifier.classify_file(tmp_path / "missing.ogg")


@pytest.mark.skipif(not SHIPPED_EVENTS.exists(), reason="the shipped audio-events weights are not in this checkout")
def test_shipped_events_model_ranks_the_events_of_mixtures(tmp_path, tool):
    from video.audio.datasets import make_audio_events

    make_audio_events(tmp_path, seed=5, size="tiny")
    classifier = _classifier(SHIPPED_EVENTS)
    value = tool("export_audio_weights").mixtures_map(classifier.model, tmp_path, classifier.classes, classifier.spec.to_dict())
    # Chance: with 2-3 of the 7 foreground classes present per clip, random scores give a mAP of about 0.4.
    assert value > 0.65, value


def test_convert_an_official_style_ast_checkpoint(tmp_path):
    """`omnisense convert ast`: official key names (`module.v.*`, `module.mlp_head.*`) into our AST, every key used."""
    from omnisense.convert import convert
    from omnisense.weights import read_weights
    from video.models.ast import ast_micro

    torch.manual_seed(0)
    source = ast_micro()
    official = {}
    for k, v in source.state_dict().items():
        if k.startswith("patch_embed."):
            official["module.v.patch_embed.proj." + k.split(".", 1)[1]] = v
        elif k.startswith("head_norm."):
            official["module.mlp_head.0." + k.split(".", 1)[1]] = v
        elif k.startswith("head."):
            official["module.mlp_head.1." + k.split(".", 1)[1]] = v
        else:
            official["module.v." + k] = v
    official["module.v.head_dist.weight"] = torch.zeros(1000, 128)  # DeiT's unused distillation classifier
    torch.save(official, tmp_path / "ast_official.pth")
    report = convert("ast", tmp_path / "ast_official.pth", tmp_path / "ast.safetensors", variant="ast_micro")
    assert report.ok, report.summary()
    state, meta = read_weights(tmp_path / "ast.safetensors")
    # the converter reads the clip length from the patch grid: the shortest length giving ast_micro's 9 time patches
    tdim = meta.transforms().target_frames
    assert meta.task == "audio_classification" and meta.model["kwargs"]["input_tdim"] == tdim
    assert (tdim - 16) // 10 == (ast_micro().input_tdim - 16) // 10 and meta.model["kwargs"]["head_norm_eps"] == 1e-5
    target = ast_micro()
    target.load_state_dict(state)
    x = torch.randn(1, 100, 128)
    assert torch.allclose(source.eval()(x), target.eval()(x))


@pytest.mark.skipif(not SHIPPED_EVENTS.exists(), reason="the shipped audio-events weights are not in this checkout")
@pytest.mark.parametrize("name,samples,rate,channels", [
    ("silence.wav", np.zeros((16_000, 1)), 16_000, 1),
    ("tiny.wav", 0.5 * np.ones((10, 1)), 16_000, 1),  # 10 samples: shorter than one 25 ms frame
    ("clipped_6ch_odd_rate.flac", np.clip(3 * np.random.default_rng(0).standard_normal((7_999, 6)), -1, 1), 7_999, 6),
])
def test_classifier_handles_awkward_inputs(tmp_path, name, samples, rate, channels):
    sf.write(tmp_path / name, samples.astype(np.float32), rate)
    result = _classifier(SHIPPED_EVENTS).classify_file(tmp_path / name, topk=2)
    assert result["clips"] == 1 and len(result["top"]) == 2
    assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-3)


def test_default_real_sound_model_states_its_vocabulary_and_rule(tone_files):
    from omnisense.models import load_model
    from video.rejection import NONE_OF_THE_KNOWN, Rejection

    model, meta = load_model("audio_cnn_small_real_sounds", task="audio_classification")
    rule = Rejection.from_dict(meta.rejection)
    classifier = AudioClassifier(model, meta.transforms(), meta.classes, rejection=rule, vocabulary=meta.vocabulary)
    result = classifier.classify_file(tone_files / "tone.wav", topk=2)
    assert result["vocabulary"] == "coarse real sounds" and result["rejection"]["score"] == rule.score
    assert len(result["rejection"]["value"]) == len(rule.kinds) and result["rejection"]["applied"]
    assert (result["label"] == NONE_OF_THE_KNOWN) == (not result["known"]) == (result["top"] == [])
    raw = classifier.classify_file(tone_files / "tone.wav", topk=2, reject=False)
    assert raw["known"] and [r["class"] for r in raw["top"]][0] in meta.classes


def test_balanced_training_draws_every_class_about_equally(tmp_path):
    """A folder set with one class five times the other: plain shuffling draws it ~83% of the time, `balanced`
    about half."""
    rng = np.random.default_rng(0)
    for name, count in (("big", 20), ("small", 4)):
        (tmp_path / name).mkdir()
        for i in range(count):
            sf.write(tmp_path / name / f"{i}.wav", 0.1 * rng.standard_normal(8000).astype(np.float32), 16_000)
    shares = {}
    for balanced in (False, True):
        data = AudioClassificationData(root=str(tmp_path), dataset="folder", batch_size=8, clip_seconds=0.25,
                                       samples_per_file=10, test_fraction=0.0, val_fraction=0.0,
                                       balanced=balanced)
        data.setup()
        labels = torch.cat([y for _, y in data.train_dataloader()])
        small = data.class_names.index("small")
        shares[balanced] = float((labels == small).float().mean())
    assert shares[False] == pytest.approx(4 / 24, abs=0.02)
    assert shares[True] == pytest.approx(0.5, abs=0.1)
