"""``thgs ingest`` writes the short-clip split (thgs.data.video_split)."""

from __future__ import annotations

from thgs.cli import main
from thgs.data import video_split
from thgs.data.subject import open_subject


def test_ingested_short_clip_trains_on_the_first_80_percent(tmp_path, video_factory):
    video = video_factory(n=20, fps=10.0, audio_seconds=2.1)
    out = tmp_path / "subj"
    assert main(["ingest", str(video), str(out), "--quiet"]) == 0
    s = open_subject(out)
    assert s.split == video_split(20, 10.0) == {"train": list(range(16)), "test": list(range(16, 20))}
