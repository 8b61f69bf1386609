import csv
import io
import random

import pytest

from art_asr_ext.metrics import word_errors
from art_asr_ext.benchmark.grid import UTTERANCE_COLUMNS
from art_asr_ext.benchmark.outputs import plots as table_module
from art_asr_ext.benchmark.outputs.plots import plot_table_heatmap, wer_colour
from art_asr_ext.benchmark.outputs.tables import (
    TableLayout,
    median_snr_markdown,
    perceptual_csv,
    table_csv,
    table_markdown,
    table_values,
    utterances_csv,
)
from art_asr_ext.benchmark.registry import format_eps

LAYOUT = TableLayout(
    rows=(("(1) DS2", "(1) DS2"), ("(8) TF", "(8) TF"), ("Transfer attack: (1) + attack from (8)", "(1) DS2")),
    attacks={"fgsm": (0.0001, 0.1), "pgd": (0.1,), "imperceptible": ()},
)


def row(table_row, attack, eps, uid, reference, hypothesis, target="OPEN THE DOOR", system=None, snr=30.0, pesq=3.0):
    gt, tgt = word_errors(reference, hypothesis), word_errors(target, hypothesis)
    values = dict(
        row=table_row,
        system=system or table_row,
        source=table_row,
        attack=attack,
        eps=eps,
        targeted=attack in ("pgd", "imperceptible"),
        strength="",
        utterance_id=uid,
        reference=reference,
        target=target,
        hypothesis=hypothesis,
        gt_errors=gt.errors,
        gt_words=gt.reference_words,
        tgt_errors=tgt.errors,
        tgt_words=tgt.reference_words,
        linf=eps,
        snr_db=float("inf") if eps == 0 else snr,
        pesq=None if eps == 0 else pesq,
        stoi=None if eps == 0 else 0.9,
        perceptual_note="" if eps == 0 or pesq is not None else "pesq: no speech found (silence)",
        vote_agreement=None,
        vote_draw_wer=None,
        queries=None,
        seconds=0.5,
    )
    assert set(values) == set(UTTERANCE_COLUMNS)
    return values


ROWS = [
    # Clean (1): 0 errors / 4 words + 1 deletion / 2 words = 1/6 = 16.7 %
    row("(1) DS2", "clean", 0.0, "u1", "A B C D", "A B C D"),
    row("(1) DS2", "clean", 0.0, "u2", "E F", "E"),
    # FGSM 0.1 (1): everything wrong: 6/6 = 100 %
    row("(1) DS2", "fgsm", 0.1, "u1", "A B C D", "W X Y Z"),
    row("(1) DS2", "fgsm", 0.1, "u2", "E F", ""),
    # PGD 0.1 (1): 4 substitutions + 1 insertion, and 2 substitutions + 3 insertions: 10/6 = 166.7 %
    row("(1) DS2", "pgd", 0.1, "u1", "A B C D", "OPEN THE POD BAY DOORS"),
    row("(1) DS2", "pgd", 0.1, "u2", "E F", "OPEN THE POD BAY DOORS"),
    # Imperceptible (1): the target reached on u1 (GT 4+... see below), TGT 0 + 1 deletion of 3 words
    row("(1) DS2", "imperceptible", 0.05, "u1", "A B C D", "OPEN THE DOOR"),  # GT 3 subs + 1 del = 4; TGT 0
    row("(1) DS2", "imperceptible", 0.05, "u2", "E F", "OPEN THE"),  # GT 2 subs; TGT 1 deletion
    # (8) has only its clean cell: 1 substitution over 2 words = 50 %
    row("(8) TF", "clean", 0.0, "u1", "E F", "E G"),
    # Transfer row: FGSM 0.1 on (1) with (8)'s examples: 1 insertion / 4 = 25 %
    row("Transfer attack: (1) + attack from (8)", "fgsm", 0.1, "u1", "A B C D", "A B C D E", system="(1) DS2"),
]


def test_corpus_wer_per_cell_hand_checked():
    values = table_values(LAYOUT, ROWS)
    assert values[0] == [pytest.approx(100 / 6), None, 100.0, pytest.approx(1000 / 6), 100.0, pytest.approx(100 / 6)]
    assert values[1] == [50.0, None, None, None, None, None]
    # A transfer row's Clean column is its target system's clean WER.
    assert values[2] == [pytest.approx(100 / 6), None, 25.0, None, None, None]


def test_table1_csv_has_the_study_layout():
    text = table_csv(LAYOUT, ROWS)
    assert text.splitlines() == [
        "System,Clean,FGSM 0.0001,FGSM 0.1,PGD 0.1,Imperceptible GT,Imperceptible TGT",
        "(1) DS2,16.7,,100.0,166.7,100.0,16.7",
        "(8) TF,50.0,,,,,",
        "Transfer attack: (1) + attack from (8),16.7,,25.0,,,",
    ]
    assert table_csv(LAYOUT, list(reversed(ROWS))) == text  # row order does not matter


def test_layout_without_imperceptible_and_eps_headers():
    layout = TableLayout(rows=(("A", "A"),), attacks={"fgsm": (1e-4, 0.2), "pgd": (1e-2,)})
    assert layout.columns == ["System", "Clean", "FGSM 0.0001", "FGSM 0.2", "PGD 0.01"]
    assert format_eps(1e-12) == "1e-12"


def test_markdown_marks_missing_cells_and_lists_failures():
    text = table_markdown(LAYOUT, ROWS, {"(8) TF | pgd | 0.1": "RuntimeError: out of memory\ntrace"}, "Caption")
    lines = text.splitlines()
    assert lines[0] == "Caption"
    assert lines[5] == "| (8) TF | 50.0 | \u2014 | \u2014 | \u2014 | \u2014 | \u2014 |"
    assert "- `(8) TF | pgd | 0.1`: RuntimeError: out of memory" in lines


def test_utterances_csv_is_sorted_whatever_the_input_order():
    shuffled = list(ROWS)
    random.Random(0).shuffle(shuffled)
    order = [label for label, _ in LAYOUT.rows]
    text = utterances_csv(shuffled, order)
    assert text == utterances_csv(ROWS, order)
    lines = text.splitlines()
    assert lines[0] == ",".join(UTTERANCE_COLUMNS)
    assert [line.split(",")[3] for line in lines[1:9]] == ["clean"] * 2 + ["fgsm"] * 2 + ["pgd"] * 2 + [
        "imperceptible"
    ] * 2
    # snr, pesq, stoi and note of a clean row, its vote agreement and draws' WER, queries (none of them), seconds
    assert lines[1].split(",")[-8:] == ["inf", "", "", "", "", "", "", "0.5"]


def test_perceptual_summary_per_cell_and_median_snr_table():
    rows = [
        row("(1) DS2", "clean", 0.0, "u1", "A B", "A B"),
        row("(1) DS2", "pgd", 0.1, "u1", "A B", "A", snr=20.0, pesq=2.0),
        row("(1) DS2", "pgd", 0.1, "u2", "A B", "A", snr=30.0, pesq=None),
        row("(1) DS2", "pgd", 0.1, "u3", "A B", "A", snr=40.0, pesq=4.0),
    ]
    summary = list(csv.DictReader(io.StringIO(perceptual_csv(rows, ["(1) DS2"]))))
    assert len(summary) == 1  # clean cells have no perturbation to measure
    cell = summary[0]
    assert (cell["attack"], cell["eps"], cell["utterances"]) == ("pgd", "0.1", "3")
    # numpy's linear percentiles of [20, 30, 40]: 22 and 38; PESQ over the two utterances it scored.
    assert [float(cell[f"snr_db_{stat}"]) for stat in ("mean", "p10", "p90")] == pytest.approx([30.0, 22.0, 38.0])
    assert [float(cell[f"pesq_{stat}"]) for stat in ("mean", "p10", "p90")] == pytest.approx([3.0, 2.2, 3.8])
    assert (cell["pesq_scored"], cell["stoi_scored"]) == ("2", "3")
    assert cell["unscored"] == "pesq: no speech found (silence) (1)"
    layout = TableLayout(rows=(("(1) DS2", "(1) DS2"),), attacks={"fgsm": (0.1,), "pgd": (0.1,)})
    assert median_snr_markdown(layout, rows).splitlines()[2] == "| (1) DS2 | \u2014 | 30.0 |"
    assert "| (1) DS2 | \u2014 | 30.0 |" in table_markdown(layout, rows, {}, "Caption")


def _rgb(css: str):
    return tuple(int(part) for part in css[4:-1].split(","))


def test_target_wer_columns_are_named_where_the_columns_are_defined():
    assert LAYOUT.target_columns == ("Imperceptible TGT",)
    assert [column for column in LAYOUT.columns if column in LAYOUT.target_columns] == ["Imperceptible TGT"]
    assert TableLayout(rows=(), attacks={"fgsm": (0.1,), "pgd": ()}).target_columns == ()


def test_target_wer_has_its_own_colour_scale_dark_where_the_attacker_succeeded():
    # The ground-truth scale is as it was: light yellow at 0, dark red at 100 and above.
    assert wer_colour(0.0) == ("rgb(255, 255, 204)", "#000")
    assert wer_colour(50.0) == ("rgb(253, 141, 60)", "#000")
    assert wer_colour(100.0) == wer_colour(150.0) == ("rgb(128, 0, 38)", "#fff")
    # Target WER 0 (the attacker's phrase recognised) is the darkest of its scale, and it lightens as WER grows.
    assert wer_colour(0.0, target=True) == ("rgb(73, 0, 106)", "#fff")
    luminance = [
        0.2126 * r + 0.7152 * g + 0.0722 * b
        for r, g, b in (_rgb(wer_colour(value, target=True)[0]) for value in range(0, 101, 5))
    ]
    assert luminance == sorted(luminance) and luminance[0] < 30 and luminance[-1] > 200
    assert wer_colour(150.0, target=True) == wer_colour(100.0, target=True)
    # Another hue: no target-WER colour is also a ground-truth colour.
    values = [float(value) for value in range(0, 151)]
    assert not {wer_colour(v, target=True)[0] for v in values} & {wer_colour(v)[0] for v in values}


def _draw_heatmap(layout, rows, path, monkeypatch):
    """Draw table1_heatmap.png; return, for the figure as saved, a function from a point in the data coordinates of
    an axes (the table is axes 0) to its pixel in the PNG, and the x labels of the other axes."""
    seen = {}
    save = table_module._save_figure

    def keep(figure, file):
        def pixel(axis: int, x: float, y: float, axes_fraction: bool = False):
            axes = figure.axes[axis]
            transform = axes.transAxes if axes_fraction else axes.transData
            fx, fy = figure.transFigure.inverted().transform(transform.transform((x, y)))
            return fx, fy

        seen["pixel"], seen["labels"] = pixel, [axes.get_xlabel() for axes in figure.axes[1:]]
        save(figure, file)

    monkeypatch.setattr(table_module, "_save_figure", keep)
    assert plot_table_heatmap(layout, rows, {}, path, title="T")
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")

    def colour(*point, axes_fraction=False):
        fx, fy = seen["pixel"](*point, axes_fraction=axes_fraction)
        return image.getpixel((int(fx * image.width), int((1 - fy) * image.height)))

    return colour, seen["labels"]


def _near(found, expected, tolerance=4):
    return all(abs(a - b) <= tolerance for a, b in zip(found, expected))


def test_heatmap_png_draws_target_columns_on_their_own_scale(tmp_path, monkeypatch):
    layout = TableLayout(
        rows=(("(1) DS2", "(1) DS2"), ("(8) TF", "(8) TF")), attacks={"fgsm": (0.1,), "imperceptible": ()}
    )
    rows = [
        row("(1) DS2", "clean", 0.0, "u1", "A B C", "A B C"),  # Clean 0.0
        row("(1) DS2", "imperceptible", 0.05, "u1", "A B C", "OPEN THE DOOR"),  # GT 100.0, TGT 0.0: success
        row("(8) TF", "clean", 0.0, "u1", "E F", "E G"),
    ]
    assert layout.columns[1:] == ["Clean", "FGSM 0.1", "Imperceptible GT", "Imperceptible TGT"]
    colour, labels = _draw_heatmap(layout, rows, tmp_path / "table1_heatmap.png", monkeypatch)
    # Left of each cell's centre, clear of its number: 0.0 is light in Clean, dark in Imperceptible TGT.
    assert _near(colour(0, 0.15, 0.5), (255, 255, 204))
    assert _near(colour(0, 2.15, 0.5), (128, 0, 38))
    assert _near(colour(0, 3.15, 0.5), (73, 0, 106))
    # The legend: a colour bar per scale, the target one dark at 0 and light at 100.
    assert "ground-truth WER" in labels[0] and "target WER (%), Imperceptible TGT" in labels[1]
    assert "dark = the attacker succeeded" in labels[1]
    assert _near(colour(1, 0.01, 0.5, axes_fraction=True), (255, 255, 204))
    assert _near(colour(2, 0.01, 0.5, axes_fraction=True), (73, 0, 106))
    assert _near(colour(2, 0.99, 0.5, axes_fraction=True), (253, 224, 221))

    # Without a target-WER column the figure is the table alone, on the ground-truth scale.
    plain = TableLayout(rows=layout.rows, attacks={"fgsm": (0.1,), "pgd": ()})
    colour, labels = _draw_heatmap(plain, rows, tmp_path / "plain.png", monkeypatch)
    assert labels == [] and _near(colour(0, 0.15, 0.5), (255, 255, 204))
