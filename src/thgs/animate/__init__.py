"""Drive a trained avatar with the test split, new motion, audio or expressions, and render videos."""

from thgs.animate.drive import Drive, DriveError, load_motion, orbit, parse_expression, rotate_camera, subject_drive
from thgs.animate.render import render_frame, render_frames, write_mp4

__all__ = ["Drive", "DriveError", "load_motion", "orbit", "parse_expression", "render_frame", "render_frames",
           "rotate_camera", "subject_drive", "write_mp4"]
