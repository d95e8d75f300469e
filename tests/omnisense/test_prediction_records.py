"""`omnisense predict`'s records (one builder per task) and its writer's refusal to overwrite."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from omnisense._errors import OmnisenseError
from omnisense.engine import run_lightning_cli

REPO = Path(__file__).resolve().parents[2]


def test_topk_records_name_the_most_probable_classes_first():
    from omnisense.train.classification import topk_records

    probs = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    records = topk_records(probs, ["a", "b", "c"], k=2)
    assert records == [{"top": [{"class": "b", "probability": pytest.approx(0.7)},
                                {"class": "c", "probability": pytest.approx(0.2)}]},
                       {"top": [{"class": "a", "probability": pytest.approx(0.5)},
                                {"class": "c", "probability": pytest.approx(0.3)}]}]
    assert topk_records(probs, None, k=1)[0]["top"][0]["class"] == 1


def test_detection_record_boxes_most_confident_first():
    from omnisense.train.detection import detection_record

    det = {"boxes": torch.tensor([[1.0, 2.0, 0.5, 4.0, 1.8, 1.5, 0.1], [5.0, 0.0, 0.4, 0.8, 0.6, 1.7, -1.0]]),
           "scores": torch.tensor([0.3, 0.9]), "labels": torch.tensor([0, 1])}
    record = detection_record(det, ("Car", "Pedestrian", "Cyclist"), "000640")
    assert record["frame"] == "000640"
    assert [b["label"] for b in record["boxes"]] == ["Pedestrian", "Car"]
    assert set(record["boxes"][0]) == {"label", "score", "center", "size", "heading"}
    assert record["boxes"][1]["center"] == [1.0, 2.0, 0.5] and record["boxes"][1]["size"] == [4.0, 1.8, 1.5]


def test_partseg_and_multiview_records():
    from omnisense.train.multiview import multiview_records
    from omnisense.train.parts import partseg_records

    parts = partseg_records(torch.tensor([[0, 1, 1]]), torch.tensor([0]), ["mug"])
    assert parts == [{"category": "mug", "parts": [0, 1, 1]}]
    seq, frame, times = torch.tensor([[0.9, 0.1]]), torch.tensor([[[0.8, 0.2], [0.6, 0.1]]]), torch.tensor([[0.0, 0.4]])
    record = multiview_records(seq, frame, times, ["Walk", "Sit"])[0]
    assert record["sequence_labels"] == ["Walk"] and record["sequence_scores"] == {"Walk": 0.9, "Sit": 0.1}
    assert record["times"] == [0.0, 0.4] and len(record["frame_scores"]) == 2


def test_predict_never_overwrites_an_existing_file(tmp_path):
    out = tmp_path / "predictions.jsonl"
    out.write_text("keep me\n")
    args = ["predict", "--config", str(REPO / "configs/debug/tiny.yaml"), "--data.init_args.tiny", "true",
            "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path),
            "--trainer.enable_progress_bar", "false", "--predictions.path", str(out)]
    with pytest.raises(OmnisenseError, match="exists"):
        run_lightning_cli(args)
    assert out.read_text() == "keep me\n"
    run_lightning_cli([*args, "--predictions.overwrite", "true"])
    assert len(out.read_text().splitlines()) == 32  # the tiny test split
