"""Audio features aligned to video frames.

``frame_features(audio, num_frames, fps, encoder="mel")`` -> :class:`AudioFeatures` with ``windows``
``[T, 16, C]``; ``neighbourhood(windows, idx)`` -> the windows of frames ``idx-4 .. idx+3``;
``subject_features(subject)`` computes or reads a subject's cached features. Encoders: ``mel`` (no weights,
default), ``precomputed`` (.npy), plus optional learned encoders when their packages are installed.
"""

from thgs.audio.encoders import (AudioFeatureError, Encoder, FeatureSequence, encoder_names, get_encoder,
                                 register_encoder)
from thgs.audio.features import (WINDOW, AudioFeatures, default_cache_dir, frame_features, load_precomputed,
                                 neighbourhood, resample_windows, subject_features, window_sequence)

__all__ = [
    "WINDOW", "AudioFeatureError", "AudioFeatures", "Encoder", "FeatureSequence", "default_cache_dir",
    "encoder_names", "frame_features", "get_encoder", "load_precomputed", "neighbourhood", "register_encoder",
    "resample_windows", "subject_features", "window_sequence",
]
