"""video: video and audio for omnisense: io, sampling, transforms, models, recognition, audio, metrics."""

from video._errors import MediaFileError, VideoError, VideoValueError

__all__ = ["MediaFileError", "VideoError", "VideoValueError"]
