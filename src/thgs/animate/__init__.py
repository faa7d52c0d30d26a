"""Drive a trained avatar with the test split, new motion, audio or expressions, and render videos.

New speech alone drives it too: :mod:`thgs.animate.speech` (speech -> face), :mod:`thgs.animate.motion`
(speech -> body, replayed training motion) and :mod:`thgs.animate.stream` (audio chunks -> frames).
"""

from thgs.animate.drive import (Drive, DriveError, DriveRequest, build_drive, load_motion, orbit, parse_expression,
                                 rotate_camera, subject_drive)
from thgs.animate.render import render_frame, render_frames, write_mp4
from thgs.animate.speech import SpeechFaceModel, SpeechModelError, speech_drive
from thgs.animate.stream import SpeechStreamer, StreamFrame, open_streamer

__all__ = ["Drive", "DriveError", "DriveRequest", "SpeechFaceModel", "SpeechModelError", "SpeechStreamer", "StreamFrame",
           "build_drive", "load_motion", "open_streamer", "orbit", "parse_expression", "render_frame", "render_frames", "rotate_camera", "speech_drive",
           "subject_drive", "write_mp4"]
