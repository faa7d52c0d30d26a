from thgs.cli import main
from thgs.evaluation.report import BEGIN, END, merge_into


def test_merge_keeps_other_sections():
    block = f"{BEGIN}\nnew\n{END}\n"
    assert merge_into("", block).startswith("# Results")
    doc = f"# R\n\nmine\n\n{BEGIN}\nold\n{END}\n\n## Other\ntheirs\n"
    merged = merge_into(doc, block)
    assert "old" not in merged and "new" in merged and "mine" in merged and "theirs" in merged


def test_report_end_to_end_and_only_read(eval_subject, tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "results.md"
    out.write_text("# Results\n\n## Render speed\nkept\n")
    args = ["report", "--data", str(eval_subject), "--runs", str(runs), "--preset", "smoke", "--steps", "1",
            "--out", str(out), "--ablations", "vanilla,no_saam,full", "--lpips", "none", "--no-views",
            "--train-args", "--init-colors 0 --grid-resolution 16"]
    assert main(args) == 0
    text = out.read_text()
    assert "kept" in text and text.count(BEGIN) == 1
    for title in ("Table 3", "Tables 5 and 8", "Table 6", "Table 4"):
        assert title in text
    assert "| Ground truth |" in text and "| Full (THGS) |" in text and "| w/o SAAM |" in text
    assert f"thgs train {eval_subject} --out {runs / 'full'} --preset smoke --steps 1" in text
    capsys.readouterr()
    assert main(["report", "--runs", str(runs), "--out", str(out), "--ablations", "vanilla,no_saam,full",
                 "--only-read"]) == 0
    assert "report: thgs train" not in capsys.readouterr().out  # nothing retrained
    assert out.read_text().count(BEGIN) == 1
    assert main(["report", "--runs", str(runs), "--out", str(tmp_path / "x.md"), "--only-read"]) == 2
    assert "missing evaluation results" in capsys.readouterr().err and not (tmp_path / "x.md").exists()


def test_report_trains_in_parallel_processes(eval_subject, tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "results.md"
    args = ["report", "--data", str(eval_subject), "--runs", str(runs), "--preset", "smoke", "--steps", "1",
            "--out", str(out), "--ablations", "vanilla,full", "--lpips", "none", "--no-views", "--jobs", "2",
            "--train-args", "--init-colors 0 --grid-resolution 16"]
    assert main(args) == 0
    for name in ("vanilla", "full"):
        assert (runs / name / "avatar.pt").is_file()
        assert (runs / f"{name}.train.log").is_file()
    assert "| Full (THGS) |" in out.read_text()


def test_report_parallel_failure_names_the_log(eval_subject, tmp_path, capsys):
    runs = tmp_path / "runs"
    args = ["report", "--data", str(eval_subject), "--runs", str(runs), "--preset", "smoke", "--steps", "1",
            "--out", str(tmp_path / "r.md"), "--ablations", "vanilla,full", "--lpips", "none", "--no-views",
            "--jobs", "2", "--train-args=--no-such-flag"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "training failed for" in err and "vanilla.train.log" in err and "full.train.log" in err
    assert not (tmp_path / "r.md").exists()
    assert main([a if a != "2" else "0" for a in args]) == 2


def test_report_train_only(eval_subject, tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "results.md"
    args = ["report", "--data", str(eval_subject), "--runs", str(runs), "--preset", "smoke", "--steps", "1",
            "--out", str(out), "--ablations", "no_leb", "--lpips", "none", "--no-views", "--train-only",
            "--train-args", "--init-colors 0 --grid-resolution 16"]
    assert main(args) == 0
    assert (runs / "no_leb" / "avatar.pt").is_file() and not (runs / "no_leb" / "eval").exists()
    assert not out.exists()


def _fake_metrics(psnr: float) -> dict:
    region = {"psnr": psnr, "ssim": 0.9, "lpips_alex_x100": 1.5, "lpips_vgg_x100": 2.5}
    return {"test": {"frames": 3, "full": region, "head": region, "mouth": region}, "render_ms_per_frame": 10.0,
            "lpips_nets": ["alex", "vgg"], "novel_view_mean": dict(region, psnr=psnr - 10),
            "novel_views": {"yaw15": region}, "lip_sync": {"av_sync": {"skipped": "x"}, "syncnet": {"skipped": "y"},
                                                          "with_ground_truth": {}}}


def test_markdown_lists_every_lpips_net_and_novel_views():
    from thgs.evaluation.report import build_markdown

    metrics = {"vanilla": _fake_metrics(30.0), "full": _fake_metrics(31.0)}
    md = build_markdown(metrics, ["thgs report"], "subj", ["alex", "vgg"], fps=False)
    assert "| method | PSNR | SSIM | LPIPS-alex x100 | LPIPS-vgg x100 |" in md
    assert "| Full (THGS) | 31.000 | 0.9000 | 1.500 | 2.500 |" in md  # Table 3 without fps
    assert "fps" not in md
    assert "### Novel views" in md and "| Vanilla (GART-like: no LEB, no SAAM, no expression input) | 20.000 |" in md
    with_fps = build_markdown(metrics, ["thgs report"], "subj", ["vgg"])
    assert "| Full (THGS) | 31.000 | 0.9000 | 2.500 | 100.0 |" in with_fps
