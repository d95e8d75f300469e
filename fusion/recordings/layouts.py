"""Readers of the public multi-view datasets' layouts (facts: ../shared/reference/video_audio_fusion.md, 3.3).

MultiSensor-Home (`thanhhff/MultiSensor-Home1`, `-Home2`): `train.json` / `test.json` hold a list of
`{"video_url_1": "01/00-View1-Part1.mp4", ..., "video_url_5": ..., "tricks": [{"start": s, "end": e,
["channel": 0], "labels": ["Sitdown"]}, ...]}`; times in seconds, shared by all views; `all_labels.json` the class
list. Audio is the track of each mp4. Our synthetic recordings add `"recording"`: a manifest with clocks and lidar.

MM-Office (`nttrd-mdlab/mm-office`): `audio/{train,test}/*.wav` (8 mics) and `video/{train,test}/*.mp4`
(4 cameras), named `split{i}_id{sensor:02d}_s{scene}_recid{rec:03d}_{division}.{wav,mp4}`;
`label/trainlabel/recinfo.csv` (recid, sceneid, patternid), `eventinfo.csv` (sceneid, patternid, division,
class1..class12: the weak multi-hot labels of each half), `classinfo.csv` (class names);
`label/testlabel/recid###.csv` (eventclass, starttime, endtime: strong labels of the test recordings).
The strong labels' time origin is the start of the recording (both halves), as the official loader reads them.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from fusion._errors import FileProblem

__all__ = ["MMOfficeClip", "MultiSensorHomeEntry", "read_mm_office", "read_multisensor_home"]


@dataclass
class MultiSensorHomeEntry:
    """One multi-view segment: view videos (absolute paths), timed labels, and an optional manifest path."""

    videos: list[Path]
    tricks: list[dict]
    recording: Path | None = None

    def labels(self) -> list[str]:
        return sorted({label for t in self.tricks for label in t["labels"]})


def read_multisensor_home(json_path: str | Path, *, video_root: str | Path | None = None,
                          check_files: bool = True) -> list[MultiSensorHomeEntry]:
    """Read a MultiSensor-Home annotation list; video paths are relative to `video_root` (default: its folder)."""
    json_path = Path(json_path)
    root = Path(video_root) if video_root is not None else json_path.parent
    try:
        entries = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileProblem(json_path, f"cannot read the annotation JSON: {exc}") from None
    if not isinstance(entries, list):
        raise FileProblem(json_path, "expected a list of segments")
    out = []
    for i, e in enumerate(entries):
        keys = sorted((k for k in e if re.fullmatch(r"video_url_\d+", k)), key=lambda k: int(k.rsplit("_", 1)[1]))
        if not keys:
            raise FileProblem(json_path, f"segment {i} has no video_url_N")
        videos = [root / e[k] for k in keys]
        if check_files:
            for v in videos:
                if not v.exists():
                    raise FileProblem(json_path, f"segment {i} names a missing video {v}")
        tricks = e.get("tricks", [])
        for t in tricks:
            if not {"start", "end", "labels"} <= set(t) or float(t["end"]) < float(t["start"]):
                raise FileProblem(json_path, f"segment {i} has a malformed trick {t}")
        rec = root / e["recording"] if "recording" in e else None
        out.append(MultiSensorHomeEntry(videos, tricks, rec))
    return out


@dataclass
class MMOfficeClip:
    """One MM-Office clip (one half of a recording) with all its sensors."""

    split: str
    recid: int
    division: int
    scene: int
    videos: list[Path] = field(default_factory=list)
    audios: list[Path] = field(default_factory=list)
    weak: list[str] = field(default_factory=list)       # class names present (eventinfo.csv)
    strong: list[dict] = field(default_factory=list)    # test only: {"label", "start", "end"} seconds


_NAME = re.compile(r"split(\d+)_id(\d+)_s(\d+)_recid(\d+)_(\d)\.(wav|mp4)$")


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise FileProblem(path, "missing")
    with path.open(newline="") as f:
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in csv.DictReader(f)]


def read_mm_office(root: str | Path) -> list[MMOfficeClip]:
    """Read the MM-Office layout under `root` (the folder holding audio/, video/, label/)."""
    root = Path(root)
    labels = root / "label"
    classinfo = _read_csv(labels / "trainlabel" / "classinfo.csv")
    name_key = next((k for k in ("eventname", "name", "event", "classname") if classinfo and k in classinfo[0]),
                    None) or (list(classinfo[0])[1] if classinfo and len(classinfo[0]) > 1 else None)
    if name_key is None:
        raise FileProblem(labels / "trainlabel" / "classinfo.csv", "no class-name column")
    classes = [row[name_key] for row in classinfo]
    recinfo = {int(r["recid"]): (int(r["sceneid"]), int(r["patternid"]))
               for r in _read_csv(labels / "trainlabel" / "recinfo.csv")}
    events = {}
    for r in _read_csv(labels / "trainlabel" / "eventinfo.csv"):
        flags = [int(float(r[f"class{k + 1}"])) for k in range(len(classes)) if f"class{k + 1}" in r]
        events[(int(r["sceneid"]), int(r["patternid"]), int(r["division"]))] = flags
    clips: dict[tuple[str, int, int], MMOfficeClip] = {}
    for split in ("train", "test"):
        for kind, ext in (("video", "mp4"), ("audio", "wav")):
            for f in sorted((root / kind / split).glob(f"*.{ext}")):
                m = _NAME.search(f.name)
                if not m:
                    raise FileProblem(f, "name does not follow split{i}_id{s}_s{scene}_recid{r}_{div}.{ext}")
                recid, div, scene = int(m[4]), int(m[5]), int(m[3])
                clip = clips.setdefault((split, recid, div), MMOfficeClip(split, recid, div, scene))
                (clip.videos if kind == "video" else clip.audios).append(f)
    for (split, recid, div), clip in clips.items():
        if recid not in recinfo:
            raise FileProblem(labels / "trainlabel" / "recinfo.csv", f"recid {recid} missing")
        scene, pattern = recinfo[recid]
        flags = events.get((scene, pattern, div))
        if flags is None:
            raise FileProblem(labels / "trainlabel" / "eventinfo.csv", f"no row for scene {scene}, pattern "
                                                                       f"{pattern}, division {div}")
        clip.weak = [c for c, on in zip(classes, flags) if on]
        strong = labels / "testlabel" / f"recid{recid:03d}.csv"
        if split == "test" and strong.exists():
            for r in _read_csv(strong):
                k = int(float(r["eventclass"]))
                if k >= 0:  # -1 is background in the official files
                    clip.strong.append({"label": classes[k], "start": float(r["starttime"]),
                                        "end": float(r["endtime"])})
    return [clips[k] for k in sorted(clips)]
