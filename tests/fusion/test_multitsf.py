"""MultiTSF on the fusion core: shapes, missing modalities, views attended (not the batch), losses, variants."""

from __future__ import annotations

import pytest
import torch

from fusion.multitsf import (MultiTSF, human_loss, multitsf_loss, multitsf_paper, multitsf_small, multitsf_tiny,
                             two_way_loss)


def _batch(b=2, v=3, t=5, n=9, p=20, frames=True):
    times = torch.arange(t).float()[None].repeat(b, 1) * 0.4 + 3.0
    return dict(
        times=times,
        video=torch.randn(b, v, t, 3, 32, 32) if frames else torch.randn(b, v, t, 32),
        video_valid=torch.rand(b, v, t) > 0.2,
        audio=torch.randn(b, v, t, 8, 8), audio_valid=torch.rand(b, v, t) > 0.2,
        lidar=torch.rand(b, n, p, 4) * torch.tensor([8, 6, 2, 1.0]), lidar_mask=torch.rand(b, n, p) > 0.1,
        lidar_times=torch.arange(n).float()[None].repeat(b, 1) * 0.2 + 3.05, lidar_valid=torch.ones(b, n, dtype=torch.bool))


def test_tiny_contract_shapes_finite_gradients():
    model = multitsf_tiny()
    batch = _batch()
    out = model(**batch)
    assert out.sequence.shape == (2, 6) and out.frame.shape == (2, 5, 6) and out.human.shape == (2, 3, 5)
    assert out.row_valid.shape == (2, 4, 5)  # 3 views + the lidar row
    seq_y = (torch.rand(2, 6) > 0.5).float()
    seq_y[:, 0] = 1
    frame_y = (torch.rand(2, 5, 6) > 0.7).float()
    frame_y[..., 1] = 1
    loss = multitsf_loss(out, seq_y, frame_y, out.row_valid.any(1), torch.rand(2, 3, 5), batch["video_valid"])
    assert torch.isfinite(loss["loss"]) and set(loss) == {"sequence", "frame", "human", "loss"}
    loss["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


@pytest.mark.parametrize("drop", ["video", "audio", "lidar", "video+lidar", "audio+lidar"])
def test_runs_with_modalities_absent(drop):
    model = multitsf_tiny().eval()
    batch = _batch(frames=False)
    for m in drop.split("+"):
        batch[m] = None
    out = model(**batch)
    assert torch.isfinite(out.sequence).all() and torch.isfinite(out.frame).all()


def test_any_number_of_views_and_fully_missing_view():
    model = multitsf_tiny().eval()
    for v in (1, 2, 6):
        out = model(**_batch(v=v, frames=False))
        assert out.sequence.shape == (2, 6)
    batch = _batch(v=3, frames=False)
    batch["video_valid"][:, 1] = False
    batch["audio_valid"][:, 1] = False
    ref = model(**batch)
    batch["video"][:, 1] = 1e3  # garbage in the missing view changes nothing
    batch["audio"][:, 1] = -1e3
    torch.testing.assert_close(model(**batch).sequence, ref.sequence)


def test_inter_view_attention_is_across_views_not_batch():
    """The released code's layer (batch_first=False on [B*T, V, D]) mixes samples of a batch; ours must not."""
    model = multitsf_tiny(lidar_dim=0, frame_from="temporal").eval()
    batch = _batch(frames=False)
    for k in ("lidar", "lidar_mask", "lidar_times", "lidar_valid"):
        batch[k] = None
    batch["video_valid"][:] = True
    batch["audio_valid"][:] = True
    ref = model(**batch)
    one = {k: (v[:1] if torch.is_tensor(v) else v) for k, v in batch.items()}
    torch.testing.assert_close(model(**one).sequence, ref.sequence[:1], atol=1e-5, rtol=1e-5)
    # and the views do talk: changing view 2 changes view 0's fused tokens, seen through the sequence output
    # once view 2 is the only view we change and the frame head (per row, pre-fusion) of view 0 stays put
    batch2 = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in batch.items()}
    batch2["video"][0, 2] = torch.randn_like(batch2["video"][0, 2])
    out2 = model(**batch2)
    torch.testing.assert_close(out2.row_frame[0, 0], ref.row_frame[0, 0])       # temporal part is per view
    assert not torch.allclose(out2.sequence[0], ref.sequence[0])
    torch.testing.assert_close(out2.sequence[1], ref.sequence[1])
    fused = multitsf_tiny(lidar_dim=0, frame_from="fused").eval()
    assert not torch.allclose(fused(**batch2).row_frame[0, 0], fused(**batch).row_frame[0, 0])


def test_two_way_loss_matches_formula():
    x = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.5, -2.0]])
    y = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    tp, tn = 4.0, 1.0

    def term(pos, neg):
        n = tn * torch.logsumexp(torch.tensor(neg) / tn, 0) if neg else torch.tensor(-1e9)
        return torch.nn.functional.softplus(n + tp * torch.logsumexp(-torch.tensor(pos) / tp, 0))

    classwise = (term([2.0], [0.0]) + term([1.5], [-1.0]) + term([-2.0], [0.5])) / 3
    samplewise = (term([2.0], [-1.0, 0.5]) + term([1.5, -2.0], [0.0])) / 2
    torch.testing.assert_close(two_way_loss(x, y, tp=tp, tn=tn), classwise + samplewise)


def test_human_loss_prefers_frames_with_people():
    person = torch.tensor([[[0.0, 0.0, 0.9, 0.8]]])
    valid = torch.ones(1, 1, 4, dtype=torch.bool)
    good = human_loss(torch.tensor([[[-3.0, -3.0, 3.0, 3.0]]]), person, valid)
    bad = human_loss(torch.tensor([[[3.0, 3.0, -3.0, -3.0]]]), person, valid)
    assert good < bad
    assert human_loss(torch.zeros(1, 1, 4), torch.zeros(1, 1, 4), valid) == 0


def test_paper_variant_sizes():
    with torch.device("meta"):  # shapes only: no 90 M-parameter allocation
        m = multitsf_paper()
    assert m.dim == 768 and len(m.temporal) == 2 and m.temporal[0].attn.heads == 12
    assert m.temporal[0].mlp[0].out_features == 3072 and m.views[0].mlp[0].out_features == 256
    assert m.views[0].attn.heads == 4 and not m.views[0].norm_first and m.temporal[0].norm_first
    assert m.audio.net[0].in_features == 1024 * 128 and m.num_classes == 16
    with pytest.raises(ValueError):
        MultiTSF(video_dim=384, audio_dim=100, dim=768, frame_encoder=None)
    assert multitsf_small().dim == 192


def test_fuse_app_end_to_end(tmp_path):
    """`omnisense fuse` on a generated recording (mp4 + AAC + lidar) with a (random) small model's weights file."""
    import json

    from fusion.inference import FusionSpec, fuse_recording
    from fusion.recordings import CLASSES, make_recording
    from omnisense.cli import main
    from omnisense.models import load_model
    from omnisense.weights import WeightsMeta, save_weights

    make_recording(tmp_path / "rec", seed=2, duration=5.0, n_cameras=2)
    model = multitsf_small(num_classes=len(CLASSES))
    spec = FusionSpec(window_steps=8, fbank_mean=-8.0, fbank_std=4.0)
    meta = WeightsMeta(task="fusion", model={"variant": "multitsf_small", "kwargs": {"num_classes": len(CLASSES)}},
                       classes=list(CLASSES), input=spec.to_dict())
    weights = save_weights(tmp_path / "w.safetensors", model.state_dict(), meta)
    assert main(["fuse", str(tmp_path / "rec"), "--weights", str(weights), "--output", str(tmp_path / "out.jsonl"),
                 "--plot", str(tmp_path / "timeline.png"), "--device", "cpu"]) == 0
    (result,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert result["schema"] == "omnisense.fusion/1" and result["input"] == str(tmp_path / "rec")
    t = len(result["times"])
    assert t >= 12 and len(result["frame_scores"]) == t and len(result["frame_scores"][0]) == len(CLASSES)
    assert set(result["sequence_scores"]) == set(CLASSES) and result["lidar"]
    assert result["coverage"]["video"] > 0.7 and result["coverage"]["audio"] > 0.7
    assert (tmp_path / "timeline.png").stat().st_size > 1000
    # the same numbers through the library function and the loaded model, whose spec round-trips
    loaded, meta = load_model(weights, task="fusion")
    assert meta.transforms() == spec
    again = fuse_recording(loaded, tmp_path / "rec", spec=meta.transforms(), classes=meta.classes)
    assert again["frame_scores"] == result["frame_scores"]


def test_fusion_spec_round_trip_and_unknown_keys():
    from fusion.inference import FusionSpec

    spec = FusionSpec(fbank_mean=-3.5, fbank_std=3.0)
    assert FusionSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(TypeError):
        FusionSpec.from_dict({**spec.to_dict(), "audio": {}})
    with pytest.raises(ValueError):
        FusionSpec.from_dict({**spec.to_dict(), "fbank_std": 0.0})


def test_training_and_inference_share_one_preparation():
    """The training recipe's spec is the shipped weights' spec, fbank statistics aside: one preparation."""
    import dataclasses

    from fusion import inference
    from omnisense.models import load_model
    from omnisense.train import multiview

    _, meta = load_model("multitsf_small_synthetic", task="fusion")
    shipped = meta.transforms()
    assert dataclasses.replace(shipped, fbank_mean=0.0, fbank_std=1.0) == multiview.SPEC
    assert multiview.model_inputs is inference.model_inputs
    assert multiview.prepare_recording is inference.prepare_recording


def test_sensor_dropout_keeps_a_view_and_single_view_samples():
    import numpy as np

    from omnisense.train.multiview import MultiViewFeatures, sensor_dropout

    b, v, t = 64, 3, 4
    batch = {"video_valid": torch.ones(b, v, t, dtype=torch.bool), "audio_valid": torch.ones(b, v, t, dtype=torch.bool),
             "lidar_valid": torch.ones(b, 7, dtype=torch.bool)}
    out = sensor_dropout(batch, p_view=0.9, p_modality=0.0, p_lidar=0.5, generator=torch.Generator().manual_seed(0))
    assert (out["video_valid"] | out["audio_valid"]).any(-1).any(-1).all()     # never every view of a sample
    assert 0 < out["lidar_valid"].all(-1).float().mean() < 1
    arrays = {"video": np.zeros((2, v, t, 5), np.float16), "video_valid": np.ones((2, v, t), bool),
              "fbank": np.zeros((2, v, t, 8, 8), np.float16), "audio_valid": np.ones((2, v, t), bool),
              "person": np.zeros((2, v, t), np.float32), "lidar": np.zeros((2, 7, 16, 4), np.float32),
              "lidar_mask": np.ones((2, 7, 16), bool), "lidar_times": np.zeros((2, 7), np.float32),
              "lidar_valid": np.ones((2, 7), bool), "times": np.zeros((2, t), np.float32),
              "labels": np.zeros((2, t, 6), np.float32), "sequence": np.zeros((2, 6), np.float32)}
    arrays["video"][1, 2] = 7
    single = MultiViewFeatures(arrays, single_view=True)
    assert len(single) == 2 * v
    item = single[5]  # recording 1, view 2
    assert item["video"].shape == (1, t, 5) and float(item["video"][0, 0, 0]) == 7 and not item["lidar_valid"].any()


def test_shipped_weights_recognise_unseen_recordings(tmp_path):
    """The shipped MultiTSF loads by name (strict) and beats chance by a wide margin on recordings it never saw."""
    import numpy as np

    from fusion.inference import fuse_recording
    from fusion.metrics import frame_map
    from fusion.recordings import make_recording
    from omnisense.models import load_model

    model, meta = load_model("multitsf_small_synthetic", task="fusion")
    scores, truth = [], []
    for seed in (20_000, 20_001):
        manifest = make_recording(tmp_path / str(seed), seed=seed, duration=12.0)
        result = fuse_recording(model, tmp_path / str(seed), spec=meta.transforms(), classes=meta.classes)
        times = np.asarray(result["times"])
        y = np.zeros((len(times), len(meta.classes)))
        for tr in manifest["tricks"]:
            for lab in tr["labels"]:
                y[(times >= tr["start"]) & (times <= tr["end"]), meta.classes.index(lab)] = 1
        scores.append(np.asarray(result["frame_scores"]))
        truth.append(y)
    fm = frame_map(np.concatenate(scores)[None], np.concatenate(truth)[None])
    chance = frame_map(np.random.default_rng(0).random(np.concatenate(truth).shape)[None], np.concatenate(truth)[None])
    assert fm > 65 and fm > chance + 25, (fm, chance)


def test_fuse_runs_on_real_footage(sample_data, tmp_path):
    """Real video end to end: three re-timed crops of vtest.avi (see fusion.recordings.real) through `fuse`."""
    from fusion.inference import fuse_recording
    from fusion.recordings.real import make_vtest_views
    from omnisense.models import load_model

    src = sample_data("opencv-samples") / "examples" / "data" / "vtest.avi"
    manifest = make_vtest_views(tmp_path, source=src, seconds=8.0)
    model, meta = load_model("multitsf_small_synthetic", task="fusion")
    result = fuse_recording(model, manifest, spec=meta.transforms(), classes=meta.classes)
    assert [s["name"] for s in result["sensors"]] == ["left", "centre", "right"]
    assert len(result["times"]) == len(result["frame_scores"]) >= 19
    assert result["coverage"]["video"] > 0.9 and result["coverage"]["audio"] == 0.0


@pytest.mark.slow
def test_paper_variant_forward():
    model = multitsf_paper(num_classes=16).eval()
    b, v, t = 1, 2, 3
    with torch.no_grad():
        out = model(times=torch.arange(t).float()[None] * 0.4, video=torch.randn(b, v, t, 3, 224, 224),
                    audio=torch.randn(b, v, t, 1024, 128))
    assert out.sequence.shape == (1, 16) and out.frame.shape == (1, t, 16) and torch.isfinite(out.frame).all()


def _sweep(actor_xy, lying=False, n=64, seed=0):
    """One lidar sweep [P, 4]: floor points plus one actor (a standing cylinder, or a low body along x)."""
    g = torch.Generator().manual_seed(seed)
    floor = torch.cat([torch.rand(n, 2, generator=g) * torch.tensor([8.0, 6.0]), torch.zeros(n, 1),
                       torch.full((n, 1), 0.2)], 1)
    x, y = actor_xy
    if lying:
        body = torch.stack([x + torch.rand(40, generator=g) * 1.6 - 0.8, y + torch.rand(40, generator=g) * 0.4 - 0.2,
                            torch.rand(40, generator=g) * 0.35, torch.full((40,), 0.75)], 1)
    else:
        a = torch.rand(40, generator=g) * 6.28
        body = torch.stack([x + 0.22 * a.cos(), y + 0.22 * a.sin(), torch.rand(40, generator=g) * 1.7,
                            torch.full((40,), 0.75)], 1)
    return torch.cat([floor, body])


def test_lidar_enters_as_flatformer_region_tokens():
    """The lidar branch is a perception3d FlatFormer over pillars, pooled into bird's-eye region tokens."""
    from perception3d.kernels import FlatFormer

    from fusion.multitsf import LidarFlatFormerEncoder

    torch.manual_seed(0)
    enc = LidarFlatFormerEncoder(out_dim=16).eval()
    assert isinstance(enc.flatformer, FlatFormer) and enc.num_regions == 12
    sweeps = torch.stack([_sweep((4.5, 3.5)), _sweep((4.5, 3.5), lying=True), _sweep((1.0, 1.0))])  # [3, P, 4]
    mask = torch.ones(sweeps.shape[:2], dtype=torch.bool)
    mask_none = mask.clone()
    mask_none[2] = False  # the third sweep: every point masked (a missing sweep)
    with torch.no_grad():
        tokens, valid = enc(sweeps[None], mask[None])                 # [1, 3, 12, 16]
        _, valid_none = enc(sweeps[None], mask_none[None])
    assert tokens.shape == (1, 3, 12, 16) and torch.isfinite(tokens).all()
    assert valid[0, :2].all() and not valid_none[0, 2].any()
    region = lambda x, y: int(y // 2) * 4 + int(x // 2)  # noqa: E731  (2 m x 2 m regions, 4 along x)
    r = region(4.5, 3.5)
    # standing vs lying in the same place: that region's token changes (posture is height, which only lidar has)
    assert (tokens[0, 0, r] - tokens[0, 1, r]).abs().max() > 1e-3
    # a region with no point gives no token: only the actor's region is valid when the floor is left out
    with torch.no_grad():
        _, only_actor = enc(sweeps[None, :1], torch.arange(sweeps.shape[1])[None, None] >= 64)
    assert only_actor[0, 0].nonzero().flatten().tolist() == [r]


def test_sequence_head_pool_plus_frames_adds_the_peak_frame_logit():
    base = multitsf_tiny(sequence_from="pool").eval()
    peak = multitsf_tiny(sequence_from="pool+frames").eval()
    peak.load_state_dict(base.state_dict())
    batch = _batch(frames=False)
    with torch.no_grad():
        a, b = base(**batch), peak(**batch)
    assert torch.allclose(b.sequence - a.sequence, b.frame.amax(1), atol=1e-5)
    with pytest.raises(ValueError, match="sequence_from"):
        multitsf_tiny(sequence_from="cls")
