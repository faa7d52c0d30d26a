"""Subjects on disk: the thgs folder format, its writer and its validating reader.

::

    from thgs.data import write_subject, open_subject
    write_subject("out/anna", frames=frames, fps=25, camera=camera, audio=(samples, 16000), ...)
    subject = open_subject("out/anna")          # raises SubjectError listing every problem
    image = subject.image(subject.split["train"][0])

The format is described in ``docs/data-format.md``.
"""

from thgs.data.format import FORMAT_NAME, FORMAT_VERSION, SubjectError, default_split, video_split
from thgs.data.subject import FolderSubject, Subject, open_subject, register_layout, registered_layouts
from thgs.data.writer import SubjectWriter, add_features, write_subject

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "FolderSubject",
    "Subject",
    "SubjectError",
    "SubjectWriter",
    "add_features",
    "default_split",
    "open_subject",
    "register_layout",
    "registered_layouts",
    "video_split",
    "write_subject",
]
