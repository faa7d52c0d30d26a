"""Synthetic talking-human subjects with exactly known ground truth (``thgs synth``).

Modules: :mod:`~thgs.synth.speech` (speech audio, phone track, audio -> mouth shapes),
:mod:`~thgs.synth.motion` (face and body motion through semantic joint names),
:mod:`~thgs.synth.appearance` (solid-texture materials and shading), :mod:`~thgs.synth.raster` (our own
CPU mesh rasterizer), :mod:`~thgs.synth.generate` (the pipeline and writing) and
:mod:`~thgs.synth.contact` (contact sheets). See docs/synthetic-subject.md.
"""
