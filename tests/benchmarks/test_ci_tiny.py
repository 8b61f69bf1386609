"""
End-to-end: the CI preset through the command line, checking every output file.
"""

import csv
import io
import json
import math
from collections import Counter
from pathlib import Path

import pytest
import yaml

from art_asr_ext.benchmark.grid import UTTERANCE_COLUMNS
from art_asr_ext.benchmark.presets import preset_path
from art_asr_ext.utils.environment import cpu_description, cpu_model, source_digest
from tests.benchmarks.helpers import read_csv

CONFIG = preset_path("ci_tiny")


def test_ci_tiny_end_to_end(ci_tiny_run):
    out, result = ci_tiny_run
    assert result.returncode == 0, result.stderr[-3000:]
    raw = yaml.safe_load(CONFIG.read_text())
    noise, fgsm, fgsm_u, pgd, budgets = (
        raw["attacks"]["noise"]["eps"],
        raw["attacks"]["fgsm"]["eps"],
        raw["attacks"]["fgsm_u"]["eps"],
        raw["attacks"]["pgd"]["eps"],
        raw["attacks"]["pgd_snr"]["snr_db"],
    )
    labels = [system["label"] for system in raw["systems"]] + ["Transfer attack: (1) + attack from (8)"]

    table = read_csv(out / "table1.csv")
    header = (out / "table1.csv").read_text().splitlines()[0]
    assert header == (
        "System,Clean,Noise 0.01,FGSM 0.001,FGSM 0.01,FGSM-U 0.01,PGD 0.001,PGD 0.01,PGD SNR 30 dB,PGD SNR 40 dB,"
        "Imperceptible GT,"
        "Imperceptible TGT"
    )
    assert [row["System"] for row in table] == labels
    for row in table:
        values = [float(row[column]) for column in header.split(",")[1:]]  # every cell filled
        assert all(0 <= value < 1000 for value in values)
    assert "| (1) DeepSpeech 2 |" in (out / "table1.md").read_text()
    assert "| (1) DeepSpeech 2 |" in result.stdout

    rows = read_csv(out / "utterances.csv")
    assert tuple(rows[0]) == UTTERANCE_COLUMNS
    cells_per_system = 1 + len(noise) + len(fgsm) + len(fgsm_u) + len(pgd) + len(budgets) + 1
    assert len(rows) == 2 * (len(raw["systems"]) * cells_per_system + cells_per_system - 1)
    assert max(Counter((r["row"], r["attack"], r["eps"], r["utterance_id"]) for r in rows).values()) == 1
    for row in rows:
        eps, linf, snr = float(row["eps"]), float(row["linf"]), float(row["snr_db"])
        for column in ("gt_errors", "gt_words", "tgt_errors", "tgt_words"):
            assert int(row[column]) >= 0
        assert int(row["gt_words"]) > 0 and int(row["tgt_words"]) > 0 and row["reference"] and row["target"]
        assert float(row["seconds"]) >= 0
        if row["attack"] == "clean":
            assert linf == 0 and snr == math.inf
        elif row["attack"] == "pgd_snr":  # eps is the budget in dB: every output meets it
            assert linf > 0 and eps - 0.01 <= snr <= eps + 3.0
        else:
            assert 0 < linf <= eps * (1 + 1e-5) and math.isfinite(snr) and snr > 0
        assert row["targeted"] == ("true" if row["attack"] in ("fgsm", "pgd", "imperceptible") else "false")
    transfer = [r for r in rows if r["row"].startswith("Transfer")]
    source = {(r["attack"], r["eps"], r["utterance_id"]): r for r in rows if r["row"].startswith("(8)")}
    for row in transfer:
        assert row["system"] == "(1) DeepSpeech 2" and row["source"] == "(8) DeepSpeech 2, other seed"
        assert row["linf"] == source[(row["attack"], row["eps"], row["utterance_id"])]["linf"]

    # Perceptual measures: per utterance of every attacked cell, and summarised per cell in perceptual.csv.
    attacked = [row for row in rows if row["attack"] != "clean"]
    assert all(1.0 <= float(row["pesq"]) <= 4.65 and 0.0 <= float(row["stoi"]) <= 1.0 for row in attacked)
    assert all(row["pesq"] == row["stoi"] == row["perceptual_note"] == "" for row in rows if row["attack"] == "clean")
    summary = read_csv(out / "perceptual.csv")
    assert len(summary) == len(attacked) // 2
    for cell in summary:
        of_cell = [
            r for r in attacked if (r["row"], r["attack"], r["eps"]) == (cell["row"], cell["attack"], cell["eps"])
        ]
        snr = [float(r["snr_db"]) for r in of_cell]
        assert float(cell["snr_db_mean"]) == pytest.approx(sum(snr) / len(snr))
        assert float(cell["snr_db_p10"]) <= float(cell["snr_db_mean"]) <= float(cell["snr_db_p90"])
        assert 1.0 <= float(cell["pesq_mean"]) <= 4.65 and 0.0 <= float(cell["stoi_mean"]) <= 1.0
        assert cell["pesq_scored"] == cell["stoi_scored"] == "2" and cell["unscored"] == ""
    assert "Median SNR in dB" in (out / "table1.md").read_text()
    checks = json.loads((out / "checks.json").read_text())["checks"]
    assert [check["check"] for check in checks] == list("abcdef")
    assert all(check["status"] in ("passed", "failed", "not applicable") for check in checks)
    assert "Evaluation checks" in (out / "table1.md").read_text()

    assert read_csv(out / "failures.csv") == []
    assert (out / "wer_vs_eps.png").stat().st_size > 1000
    assert (out / "table1_heatmap.png").stat().st_size > 1000
    assert len(list((out / "adversarial").glob("*.npz"))) == cells_per_system - 1
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["config"] == raw and run_json["invocation"]["cells"]["computed"] == len(rows) // 2
    assert run_json["invocation"]["wall_time_s"] > 0 and run_json["versions"]["torch"]
    # Tables on CPU reproduce exactly only on the same kind of CPU: the provenance names it.
    assert run_json["cpu"] == cpu_description() and run_json["cpu"]["model"] == cpu_model()
    assert run_json["source_digest"] == source_digest()
    assert "Done in" in (out / "run.log").read_text()

    # The report: its media saved per cell (first 3 utterances: both here), its cost and size in run.json.
    report = run_json["invocation"]["report"]
    assert (out / "report.html").is_file() and 0 < report["bytes"] < 30e6 and report["media_s"] > 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    defended = {system["label"] for system in raw["systems"] if system.get("defences")}
    for record in records:
        media = record["report_media"]
        assert [entry["utterance_id"] for entry in media] == run_json["invocation"]["utterances"]
        for entry in media:
            assert (entry["adversarial"] is None) == (record["attack"] == "clean")
            assert (entry["defended"] is None) == (record["system"] not in defended)
            assert (entry["spectrogram"] is None) == (record["attack"] == "clean")
            for kind in ("clean", "adversarial", "defended", "spectrogram"):
                assert entry[kind] is None or (out / entry[kind]).stat().st_size > 100


EXPECTED = Path(__file__).parent / "expected" / "ci_tiny"


def _without_seconds(path: Path) -> str:
    """utterances.csv less its wall-clock `seconds` column, the one field two runs of a config may differ in."""
    rows = list(csv.reader(io.StringIO(path.read_text())))
    keep = [index for index, name in enumerate(rows[0]) if name != "seconds"]
    return "\n".join(",".join(row[index] for index in keep) for row in rows)


def test_ci_tiny_gives_the_committed_table(ci_tiny_run):
    """
    The committed outputs of ci_tiny (one torch thread, seed 0) are reproduced byte for byte on the CPU kind they were
    recorded on; on another kind, where float rounding may differ, the table's rows, columns, utterances and targets
    must still match. A refactoring that changes a result fails here.
    """
    out, result = ci_tiny_run
    assert result.returncode == 0, result.stderr[-3000:]
    recorded = json.loads((EXPECTED / "run.json").read_text())
    expected_rows = list(csv.DictReader(io.StringIO((EXPECTED / "utterances.csv").read_text())))
    rows = read_csv(out / "utterances.csv")
    identity = (
        "row",
        "system",
        "source",
        "attack",
        "eps",
        "targeted",
        "strength",
        "utterance_id",
        "reference",
        "target",
    )
    assert [tuple(r[c] for c in identity) for r in rows] == [tuple(r[c] for c in identity) for r in expected_rows]
    for name in ("table1.csv", "transfer_matrix.csv"):
        lines, expected = (out / name).read_text().splitlines(), (EXPECTED / name).read_text().splitlines()
        assert lines[0] == expected[0] and [line.split(",")[0] for line in lines] == [l.split(",")[0] for l in expected]
    if recorded["cpu"] != cpu_description():
        pytest.skip(f"the committed ci_tiny outputs were recorded on {recorded['cpu']}; this is {cpu_description()}")
    for name in ("table1.csv", "checks.json", "transfer_matrix.csv"):
        assert (out / name).read_text() == (EXPECTED / name).read_text(), name
    assert _without_seconds(out / "utterances.csv") == _without_seconds(EXPECTED / "utterances.csv")
