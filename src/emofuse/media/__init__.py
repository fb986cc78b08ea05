"""Media I/O: audio, video, images and text, with clear errors naming the file and the problem."""

from .audio import AudioInfo, load_audio, probe_audio, resample, to_mono
from .image import load_image
from .text import normalise_text, read_lines, read_text
from .video import VideoInfo, iter_frames, probe_video, read_audio_track, read_frames

__all__ = ["AudioInfo", "load_audio", "probe_audio", "resample", "to_mono", "load_image",
           "normalise_text", "read_text", "read_lines", "VideoInfo", "probe_video",
           "iter_frames", "read_frames", "read_audio_track"]
