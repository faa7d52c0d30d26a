import pytest

from thgs.data import FolderSubject, Subject, SubjectError, open_subject, register_layout, registered_layouts
from thgs.data.subject import _LAYOUTS, SAMPLE_DECODES, _sample

from .subject_fixtures import T, break_subject


BROKEN = [
    ("missing_image", "images/000005.png: missing"),
    ("missing_mask", "masks/000002.png: missing"),
    ("extra_image", "unexpected frame file(s): 000012.png"),
    ("params_frames", "params.npz: field 'pose' has shape (11, 55, 3), expected (12, 55, 3)"),
    ("nan_pose", "params.npz: field 'pose' holds 1 non-finite value(s) (NaN at index (3, 7, 2))"),
    ("expression_shape", "params.npz: field 'expression' has shape (12, 7), expected (12, 10)"),
    ("params_missing_field", "params.npz: field 'transl' is missing"),
    ("params_missing", "params.npz: missing"),
    ("audio_short", "audio.wav: audio lasts 0.400 s"),
    ("audio_count", "audio.wav: holds 6400 samples, meta.json field 'audio.num_samples' says 7680"),
    ("audio_missing", "audio.wav: missing"),
    ("garbage_png", "images/000000.png: cannot be read as an image"),
    ("wrong_size_png", "images/000000.png: size 10x10, expected 32x24"),
    ("missing_meta_key", "meta.json: field 'fps' is missing"),
    ("meta_type", "meta.json: field 'num_frames' must be int, got '12'"),
    ("meta_split", "meta.json: field 'split.test' and 'train' share frames 4"),
    ("meta_version", "meta.json: field 'version' is 3"),
    ("meta_unparseable", "meta.json: cannot be parsed"),
    ("features_frames", "features/mel.npy: first dimension is 9, expected num_frames = 12"),
]


@pytest.mark.parametrize("case, expected", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_subject_is_reported(subject_dir, case, expected):
    break_subject(subject_dir, case)
    with pytest.raises(SubjectError) as err:
        open_subject(subject_dir)
    assert any(expected in m for m in err.value.problems), err.value.problems
    assert expected in str(err.value)
    try:
        s = open_subject(subject_dir, validate=False)
    except SubjectError as exc:  # meta.json itself is broken: nothing can be opened
        assert "meta" in case
        assert any(expected in m for m in exc.problems)
    else:
        assert any(expected in m for m in s.problems())


def test_corrupt_png_found_by_decoding(subject_dir):
    break_subject(subject_dir, "corrupt_png")
    s = open_subject(subject_dir)  # the cheap checks read headers only
    probs = s.problems()
    assert len(probs) == 1 and probs[0].startswith(f"images/{T - 1:06d}.png: cannot be decoded"), probs
    with pytest.raises(SubjectError, match="cannot be decoded"):
        s.image(T - 1)
    assert s.problems(decode="none") == []


def test_decode_all_finds_what_the_sample_misses(subject_dir):
    i = min(set(range(T)) - set(_sample(list(range(T)), SAMPLE_DECODES)))
    p = subject_dir / "masks" / f"{i:06d}.png"
    p.write_bytes(p.read_bytes()[:100])
    s = open_subject(subject_dir)
    assert s.problems(decode="sample") == []
    probs = s.problems(decode="all")
    assert len(probs) == 1 and probs[0].startswith(f"masks/{i:06d}.png: cannot be decoded"), probs


def test_every_problem_is_listed(subject_dir):
    for case in ("missing_image", "nan_pose", "audio_short"):
        break_subject(subject_dir, case)
    with pytest.raises(SubjectError) as err:
        open_subject(subject_dir)
    assert len(err.value.problems) == 3


def test_reader_errors(subject_dir, tmp_path):
    s = open_subject(subject_dir)
    with pytest.raises(IndexError):
        s.image(T)
    with pytest.raises(KeyError):
        s.view("nope", 0)
    assert s.truth() == {} and s.features("mel") is None and len(s) == T
    with pytest.raises(SubjectError, match="no such file"):
        open_subject(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    with pytest.raises(SubjectError, match="meta.json: missing"):
        open_subject(tmp_path / "plain")


def test_register_layout(tmp_path, subject_dir):
    class Other(FolderSubject):
        """A layout whose folder holds the subject one level down."""

        def __init__(self, path):
            super().__init__(path / "inner")

    outer = tmp_path / "outer"
    outer.mkdir()
    subject_dir.rename(outer / "inner")
    (outer / "LAYOUT").write_text("other")
    try:
        register_layout(lambda p: (p / "LAYOUT").is_file(), Other, name="other")
        assert registered_layouts()[-1] == "other"
        s = open_subject(outer)
        assert isinstance(s, Other) and isinstance(s, Subject) and s.num_frames == T
    finally:
        _LAYOUTS[:] = [entry for entry in _LAYOUTS if entry[0] != "other"]
    with pytest.raises(SubjectError, match="not a subject in any known layout"):
        open_subject(outer)
