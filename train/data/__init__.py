"""Feature data in the community format, labels from names, and the built-in synthetic set."""

from .datasets import BalancedBatches, TrainCrops
from .features import VideoEntry, load_features, load_video, read_list, resample_segments
from .names import NORMAL, VideoLabel, video_label

__all__ = [
    "NORMAL", "BalancedBatches", "TrainCrops", "VideoEntry", "VideoLabel",
    "load_features", "load_video", "read_list", "resample_segments", "video_label",
]
