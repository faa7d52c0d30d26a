"""Report pictures (contact sheets per region) and the run report's tables and pages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thgs.evaluation.run_report import Picture, RunReport, lipsync_table, quality_table, to_html, write_report
from thgs.evaluation.sheets import grid, pick_evenly, region_rows
from thgs.metrics.regions import Box
from thgs.utils.io import write_image


def test_region_rows_crop_each_region_and_show_the_error():
    truth = torch.zeros(40, 60, 3)
    render = truth.clone()
    render[10:20, 30:50] = 1.0  # wrong only inside the head box
    boxes = {"head": Box(30, 10, 50, 20), "mouth": Box(0, 0, 10, 8)}
    tiles = region_rows(truth, {"full": render, "vanilla": truth}, boxes, caption="frame 3")
    assert [label for label, _ in tiles][:5] == ["frame 3 full: truth", "full", "full error", "vanilla",
                                                 "vanilla error"]
    assert len(tiles) == 3 * 5  # full frame, head, mouth; truth + (render, error) x 2
    head_err = tiles[7][1]
    assert head_err.shape == (10, 20, 3)  # the whole head crop is at the top of the ramp (pale yellow)
    assert (head_err.reshape(-1, 3) == [255, 255, 191]).all()
    assert tiles[12][1].shape == (8, 10, 3) and tiles[12][1].max() == 0  # mouth: no error, black
    assert len(region_rows(truth, {"r": render}, {})) == 3  # no boxes: the full frame only


def test_grid_lays_out_rows_and_save_writes_png_and_jpeg(tmp_path):
    a = np.full((10, 20, 3), 200, np.uint8)
    sheet = grid([[("a", a), ("b", a)], [("c", a)]], tile_height=30, gap=4)
    assert sheet.shape == (2 * 30 + 4, 2 * 60 + 4, 3)
    assert (sheet[30:34] == 255).all()  # the white gap between rows
    from PIL import Image

    for name, fmt in (("s.png", "PNG"), ("s.jpg", "JPEG")):
        write_image(tmp_path / name, sheet)
        with Image.open(tmp_path / name) as im:
            assert im.format == fmt and im.size == (sheet.shape[1], sheet.shape[0])
    with pytest.raises(ValueError):
        grid([])
    assert pick_evenly(10, 3) == [0, 4, 9] and pick_evenly(2, 5) == [0, 1] and pick_evenly(0, 3) == []


def test_report_tables_and_pages(tmp_path):
    summary = {"lpips_nets": ["vgg"], "test": {"frames": 4, "full": {"frames": 4, "psnr": 25.1234, "ssim": 0.9,
                                                                    "lpips_vgg_x100": 12.0},
                                               "mouth": {"frames": 4, "psnr": 30.0, "ssim": 0.95}},
               "lip_sync": {"landmarks": {"opening_corr": 0.8, "lip_lmd_px": 1.5,
                                          "render": {"av_sync": {"offset": 1}},
                                          "ground_truth": {"av_sync": {"offset": 0}}},
                            "with_ground_truth": {"opening_corr": 0.7},
                            "av_sync": {"render": {"offset": 2}, "ground_truth": {"offset": 0}}}}
    title, header, rows = quality_table(summary)
    assert header[-1] == "LPIPS-vgg x100" and rows[0] == ["full", "4", "25.12", "0.9000", "12.00"]
    assert rows[1][0] == "mouth" and rows[1][-1] == "-"  # no LPIPS for that region
    lip = lipsync_table(summary)
    assert lip is not None and lip[2][0][3] == "0" and lip[2][1][1:4] == ["0.800", "1.50", "1"]
    assert lipsync_table({"lip_sync": {}}) is None
    report = RunReport(title="a <b>", facts={"k": "v&w"}, tables=[(title, header, rows)],
                       pictures=[Picture("report/x.png", "pic")], links=[("video", "test.mp4")], commands=["thgs demo"])
    page = to_html(report)
    assert "a &lt;b&gt;" in page and "v&amp;w" in page and "<img src='report/x.png'" in page
    md, html = write_report(tmp_path, report)
    assert md.read_text().startswith("# a <b>") and "![pic](report/x.png)" in md.read_text() and html.is_file()
