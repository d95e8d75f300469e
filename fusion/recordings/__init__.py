"""Multi-view, multi-modal recordings: dataset layouts (MultiSensor-Home, MM-Office) and a synthetic generator.

- `read_multisensor_home(json_path)`: the MultiSensor-Home annotation list (`video_url_1..5`, `tricks`).
- `read_mm_office(root)`: MM-Office's folder layout, weak clip labels (`eventinfo.csv`/`recinfo.csv`) and strong
  test labels (`testlabel/recid###.csv`).
- `make_multiview_recordings(out, seed=, size=)`: synthetic recordings of one room (the `omnisense data make
  multiview-recordings` generator); see `fusion.recordings.synthetic`.
"""

from fusion.recordings.layouts import (MMOfficeClip, MultiSensorHomeEntry, read_mm_office, read_multisensor_home)
from fusion.recordings.synthetic import CLASSES, make_multiview_recordings, make_recording

__all__ = ["CLASSES", "MMOfficeClip", "MultiSensorHomeEntry", "make_multiview_recordings", "make_recording",
           "read_mm_office", "read_multisensor_home"]
