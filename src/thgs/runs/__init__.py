"""A training run's products, used alike by training and by everything that drives a trained avatar.

Below both :mod:`thgs.train` (which writes runs) and :mod:`thgs.animate`, :mod:`thgs.viewer`,
:mod:`thgs.evaluation`, :mod:`thgs.bench` and the commands (which read them); nothing here imports
:mod:`thgs.train`.

- :mod:`thgs.runs.config`: :class:`~thgs.runs.config.TrainConfig`, the named presets and their checks (the
  config a run records, which also describes the avatar it builds);
- :mod:`thgs.runs.checkpoint`: checkpoint files read without running code from them;
- :mod:`thgs.runs.avatar_io`: the run folder's file names, building the avatar a config describes, the
  avatar part of a checkpoint, :func:`~thgs.runs.avatar_io.load_avatar`;
- :mod:`thgs.runs.folder`: finding a run's avatar file and training subject, and opening both
  (:func:`~thgs.runs.folder.open_run`);
- :mod:`thgs.runs.frames`: per-frame data of a subject (camera, background, composited frames, body
  parameters, audio windows, frames with a person).
"""
