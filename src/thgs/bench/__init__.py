"""Speed benchmarks (``thgs bench``): render time per part against the rasterization floor, training speed."""

from thgs.bench.speed import SpeedOptions, animate_batch, fresh_avatar, render_speed, train_speed
from thgs.bench.timing import Timing, time_fn

__all__ = ["SpeedOptions", "Timing", "animate_batch", "fresh_avatar", "render_speed", "time_fn", "train_speed"]
