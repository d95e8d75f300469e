"""Action recognition: datasets, the synthetic action generator, multi-view testing, metrics."""

from video.recognition.datasets import (VideoClipDataset, VideoSample, read_list, read_something_something,
                                        scan_class_folders)
from video.recognition.metrics import evaluate, mean_class_accuracy, topk_accuracy
from video.recognition.recognizer import VideoRecognizer
from video.recognition.synthetic import CLASSES, SHAPES, make_actions, render_clip

__all__ = ["CLASSES", "SHAPES", "VideoClipDataset", "VideoRecognizer", "VideoSample", "evaluate", "make_actions",
           "mean_class_accuracy", "read_list", "read_something_something", "render_clip", "scan_class_folders",
           "topk_accuracy"]
