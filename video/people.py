"""Per-frame person scores on real footage: OpenCV's HOG people detector (Dalal & Triggs, CVPR 2005).

The detector and its linear SVM come with `opencv-python-headless` (`cv2.HOGDescriptor_getDefaultPeopleDetector`,
trained by OpenCV on upright full-body pedestrians, 64 x 128 windows): nothing is downloaded. It is what MultiTSF's
human-centric module is fed with here (the paper uses YOLOv10 scores); `fusion.inference.fuse_recording` and the
`vtest-views` generator take it.

    detector = HogPersonDetector()
    scores = detector.scores(frames)        # frames uint8 [N, H, W, 3] RGB -> [N] in [0, 1]

A frame's score is `sigmoid(margin)` of its best detection's SVM margin (OpenCV's `weights`), 0 when no window
passes; a frame counts as showing a person when its score is at least `threshold` (0.5: any detection). Frames are
upscaled so that their short side is at least `min_side` pixels, because the detector's window is 128 pixels tall
and pedestrians in surveillance footage are smaller. What it misses by construction: people seen only from the
chest up (a head-and-shoulders shot), seated people, and very small figures; measured on hand-labelled frames of
the sample footage by `omnisense bench people` (figures in the README; `tests/video/test_people.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from video._errors import VideoValueError

__all__ = ["HogPersonDetector"]


@dataclass
class HogPersonDetector:
    """OpenCV's HOG + linear SVM people detector, per frame.

    Args:
        min_side: frames whose short side is smaller are upscaled to it (pixels).
        stride: window stride in pixels (OpenCV's `winStride`); 8 is OpenCV's sample setting.
        scale: image pyramid step.
        threshold: score at and above which a frame counts as showing a person.
    """

    min_side: int = 480
    stride: int = 8
    scale: float = 1.05
    threshold: float = 0.5

    def __post_init__(self) -> None:
        try:
            import cv2
        except ImportError:
            raise VideoValueError("the person detector needs OpenCV: pip install opencv-python-headless") from None
        self._cv2 = cv2
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def margin(self, frame: np.ndarray) -> float:
        """The best detection's SVM margin in one RGB frame `uint8 [H, W, 3]`; -inf when no window passes."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise VideoValueError(f"expected an RGB frame uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
        h, w = frame.shape[:2]
        factor = max(1.0, self.min_side / min(h, w))
        img = frame
        if factor > 1.0:
            img = self._cv2.resize(frame, (round(w * factor), round(h * factor)), interpolation=self._cv2.INTER_LINEAR)
        if img.shape[0] < 128 or img.shape[1] < 64:
            return float("-inf")
        _, weights = self._hog.detectMultiScale(img, winStride=(self.stride, self.stride), padding=(8, 8),
                                                scale=self.scale)
        return float(np.max(weights)) if len(weights) else float("-inf")

    def scores(self, frames: np.ndarray) -> np.ndarray:
        """Person scores `float32 [N]` in [0, 1] of RGB frames `uint8 [N, H, W, 3]`."""
        margins = np.array([self.margin(f) for f in frames], dtype=np.float64)
        with np.errstate(over="ignore"):
            return (1.0 / (1.0 + np.exp(-margins))).astype(np.float32)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return self.scores(frames)

    def has_person(self, frames: np.ndarray) -> np.ndarray:
        """bool [N]: frames whose score reaches `threshold`."""
        return self.scores(frames) >= self.threshold
