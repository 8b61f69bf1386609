"""
report.html without a browser: the heatmap's cell statuses, the word-level differences, the `report` config section,
the small-multiples figure's lines, and `art-asr-benchmark report --out DIR` (see test_report_browser.py for the page
in Chromium).
"""

import json
import shutil
from pathlib import Path

import pytest

from art_asr_ext.benchmark.grid import build_grid
from art_asr_ext.benchmark.cli import main
from art_asr_ext.benchmark.config import ConfigError, parse_config
from art_asr_ext.benchmark.outputs.report_cells import transcript_diff_html
from art_asr_ext.benchmark.outputs.report import (
    FAILED,
    OK,
    PENDING,
    SKIPPED,
    heatmap_cells,
    report_html,
)
from art_asr_ext.benchmark.outputs.tables import table_layout
from art_asr_ext.benchmark.outputs.plots import MAX_LINES_PER_PANEL, plot_wer_vs_eps, wer_colour
from art_asr_ext.benchmark.outputs.tables import TableLayout
from tests.benchmarks.helpers import mini_config_dict


def _row(label, attack, eps, errors):
    return {"row": label, "attack": attack, "eps": eps, "utterance_id": "u1", "gt_errors": errors, "gt_words": 10}


def test_heatmap_marks_failed_pending_and_skipped_cells_apart():
    config = parse_config(mini_config_dict(), Path("."))
    layout, grid = table_layout(config), build_grid(config)
    records = {
        "(1) Tiny | clean | 0.0": {"status": "ok", "rows": [_row("(1) Tiny", "clean", 0.0, 3)]},
        "(1) Tiny | fgsm | 0.01": {"status": "failed", "error": "RuntimeError: out of memory\ntraceback"},
    }
    cells = heatmap_cells(layout, grid, records)
    assert [len(line) for line in cells] == [len(layout.columns) - 1] * len(layout.rows)
    first = {cell.column: cell for cell in cells[0]}
    assert first["Clean"].status == OK and first["Clean"].value == pytest.approx(30.0)
    assert first["FGSM 0.01"].status == FAILED and first["FGSM 0.01"].error.startswith("RuntimeError")
    assert first["PGD 0.01"].status == PENDING
    second = {cell.column: cell for cell in cells[1]}  # (2) has no imperceptible attack: not in the grid
    assert second["Imperceptible GT"].status == SKIPPED and second["Imperceptible GT"].key is None
    assert cells[2][0].key == "(1) Tiny | clean | 0.0"  # a transfer row's Clean is its target's clean cell

    page = report_html("T", "caption", layout, grid, records, {"config": {"a": "<b>"}}, None, [])
    assert 'data-status="failed"' in page and 'data-status="pending"' in page and 'data-status="skipped"' in page
    assert "&lt;b&gt;" in page and "<b>" not in page.split('<h2 id="provenance">')[1]  # escaped
    assert page.count('<tr class="transfer">') == 1 and "Transfer attacks" in page


def _td(page, row, column):
    return next(line for line in page.splitlines() if f'data-row="{row}" data-column="{column}"' in line)


def test_heatmap_colours_target_wer_on_its_own_scale_with_a_legend():
    config = parse_config(mini_config_dict(), Path("."))
    layout, grid = table_layout(config), build_grid(config)
    imperceptible = next(cell.key for cell in grid if cell.attack == "imperceptible")
    # The attacker's phrase recognised exactly (target WER 0) while every reference word is lost (GT WER 100).
    success = {**_row("(1) Tiny", "imperceptible", 0.05, 10), "tgt_errors": 0, "tgt_words": 4}
    records = {
        "(1) Tiny | clean | 0.0": {"status": "ok", "rows": [_row("(1) Tiny", "clean", 0.0, 0)]},
        imperceptible: {"status": "ok", "rows": [success]},
    }
    page = report_html("T", "caption", layout, grid, records, {}, None, [])
    clean, gt, tgt = (_td(page, "(1) Tiny", column) for column in ("Clean", "Imperceptible GT", "Imperceptible TGT"))
    # 0.0 is the lightest ground-truth colour, but the darkest target-WER one: there it is the attacker's success.
    assert ">0.0<" in clean and 'style="background: rgb(255, 255, 204); color: #000"' in clean
    assert ">0.0<" in tgt and 'style="background: rgb(73, 0, 106); color: #fff"' in tgt
    assert wer_colour(0.0, target=True) == ("rgb(73, 0, 106)", "#fff")
    assert 'data-scale="target"' in tgt and "low: the attack succeeded" in tgt
    assert ">100.0<" in gt and "background: rgb(128, 0, 38)" in gt and "data-scale" not in gt + clean
    assert page.count('data-scale="target"') == len(layout.rows)  # the TGT column, whatever its cells' status
    # The legend names both scales, the target one running dark to light from 0 %.
    legend = next(line for line in page.splitlines() if 'id="target-legend"' in line)
    assert "Imperceptible TGT" in legend and "a <b>low</b> target WER means the attacker succeeded" in legend
    assert '<span style="background: rgb(73, 0, 106); color: #fff">0 %</span>' in legend
    assert '<p class="legend">Ground-truth WER: <span style="background: rgb(255, 255, 204)' in page
    header = next(line for line in page.splitlines() if line.startswith('<th scope="col"') and "TGT" in line)
    assert "low means the attack succeeded" in header and "rgb(73, 0, 106)" in header

    # A table without a target-WER column keeps its single legend.
    raw = mini_config_dict()
    del raw["systems"][0]["imperceptible"]
    config = parse_config(raw, Path("."))
    plain = report_html("T", "caption", table_layout(config), build_grid(config), records, {}, None, [])
    assert "Imperceptible TGT" not in plain and "data-scale" not in plain and "target-legend" not in plain
    assert '<p class="legend">WER: <span style="background: rgb(255, 255, 204)' in plain


def test_transcript_differences_are_marked_word_by_word():
    marked = transcript_diff_html("THE CAT SAT ON MAT", "THE DOG SAT ON THE MAT")
    assert marked == 'THE <span class="sub" title="CAT">DOG</span> SAT ON <ins>THE</ins> MAT'
    assert transcript_diff_html("A B <C>", "A <C>") == "A <del>B</del> &lt;C&gt;"
    assert transcript_diff_html("A", "") == "<del>A</del>"


@pytest.mark.parametrize(
    "section, message",
    [
        ({"utterances": -1}, "report.utterances: must be >= 0. Found: -1"),
        ({"utterances": "3"}, "report.utterances: must be an integer. Found: '3'"),
        ({"audio": "mp3"}, "report.audio: must be one of ['opus', 'flac']. Found: 'mp3'"),
        ({"players": 3}, "report.players: unknown key"),
        ([3], "report: must be a mapping"),
    ],
)
def test_bad_report_section(section, message):
    raw = mini_config_dict()
    raw["report"] = section
    with pytest.raises(ConfigError) as error:
        parse_config(raw, Path("."))
    assert message in str(error.value)


def test_report_section_defaults():
    assert parse_config(mini_config_dict(), Path(".")).report.utterances == 3
    raw = mini_config_dict()
    raw["report"] = {"utterances": 0, "audio": "flac"}
    assert parse_config(raw, Path(".")).report.audio == "flac"


def test_small_multiples_never_repeat_a_colour_and_style_in_a_panel(tmp_path):
    labels = [f"({i}) DeepSpeech 2 variant {i}" for i in range(1, 12)] + ["(12) Transformer", "(13) Transformer + RS"]
    layout = TableLayout(
        rows=tuple((label, label) for label in labels),
        attacks={"fgsm": (0.001, 0.01), "pgd": (0.01,), "imperceptible": ()},
    )
    rows = [
        _row(label, attack, eps, i % 10)
        for i, label in enumerate(labels)
        for attack, eps in (("fgsm", 0.001), ("fgsm", 0.01), ("pgd", 0.01))
    ]
    families = {label: "DeepSpeech2" if "DeepSpeech" in label else "Transformer" for label in labels}
    specs = plot_wer_vs_eps(layout, rows, tmp_path / "wer_vs_eps.png", families=families)
    assert (tmp_path / "wer_vs_eps.png").stat().st_size > 1000
    panels = {}
    for spec in specs:
        panels.setdefault(spec.panel, []).append(spec)
    assert sorted(panels) == ["DeepSpeech2 (1/2)", "DeepSpeech2 (2/2)", "Transformer"]  # 11 rows: 6 + 5
    assert {spec.row for spec in specs} == set(labels)
    for panel in panels.values():
        assert len({spec.row for spec in panel}) <= MAX_LINES_PER_PANEL
        assert len({(spec.colour, spec.linestyle) for spec in panel}) == len(panel)
        colours = {spec.row: spec.colour for spec in panel}
        assert len(set(colours.values())) == len(colours)  # one colour per row
        assert {spec.linestyle for spec in panel if spec.attack == "fgsm"} != {
            spec.linestyle for spec in panel if spec.attack == "pgd"
        }


def test_report_command_rewrites_the_report_of_a_finished_run(ci_tiny_run, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(ci_tiny_run[0], out)
    (out / "report.html").unlink()
    (out / "table1_heatmap.png").unlink()
    assert main(["report", "--out", str(out)]) == 0
    assert "Report in" in capsys.readouterr().out
    assert (out / "report.html").read_text() == (ci_tiny_run[0] / "report.html").read_text()
    assert (out / "table1_heatmap.png").stat().st_size > 1000
    assert json.loads((out / "run.json").read_text()) == json.loads((ci_tiny_run[0] / "run.json").read_text())


@pytest.mark.parametrize("where", ["missing", "empty", "a file"])
def test_report_command_on_a_directory_without_a_run(tmp_path, capsys, where):
    out = tmp_path / "out"
    if where == "empty":
        out.mkdir()
    elif where == "a file":
        out.write_text("x")
    assert main(["report", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    expected = "holds no run's results (no results.jsonl)" if where == "empty" else "is not a directory"
    assert error.startswith(f"error: {out} {expected}") and "Traceback" not in error
