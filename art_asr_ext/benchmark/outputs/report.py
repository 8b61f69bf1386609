"""
report.html: a run's results for a person to read and hear, one HTML file beside ``table1.csv`` plus the media folder
``report/`` (see :mod:`art_asr_ext.benchmark.report_media`). It opens from disk with no server and no network: no
script, style or font from anywhere else, only the run's own files.

It holds Table I as a heatmap (systems as rows, cells as columns, coloured by WER, a target-WER column on a scale of
its own; failed, not yet run and skipped cells marked apart), the figures, a drill-down per cell (audio players for the
clean, adversarial and defended input, transcripts with their word-level differences, SNR, PESQ, STOI and L∞, a
spectrogram of the perturbation), and the run's provenance (config, seeds, versions, device, wall time, evaluation
checks).

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from art_asr_ext.benchmark.grid import CLEAN, Cell
from art_asr_ext.benchmark.outputs.plots import WER_SCALE_MAX, wer_colour
from art_asr_ext.benchmark.outputs.tables import TableLayout, table_values
from art_asr_ext.benchmark.outputs.report_cells import anchor, drill_down_html, escape, number_text
from art_asr_ext.utils.io import atomic_write_text

REPORT = "report.html"
#: Status of a heatmap cell without a value: in the grid and failed, in the grid and not run yet, or not in the
#: config's grid (a dash in table1.md).
OK, FAILED, PENDING, SKIPPED = "ok", "failed", "pending", "skipped"
_STYLE = """
body { font-family: system-ui, sans-serif; font-size: 15px; line-height: 1.4; margin: 1.5em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
.caption { color: #555; }
table { border-collapse: collapse; }
.heatmap { font-size: 13px; }
.heatmap th, .heatmap td { border: 1px solid #fff; padding: 3px 6px; text-align: center; white-space: nowrap; }
.heatmap thead th { white-space: normal; min-width: 48px; max-width: 104px; vertical-align: bottom; }
.heatmap th.system { text-align: left; font-weight: normal; }
.heatmap thead th { background: #eee; font-weight: 600; }
.heatmap td a { color: inherit; text-decoration: none; display: block; }
.heatmap tr.group th { background: #fff; text-align: left; padding-top: 12px; font-style: italic; }
.heatmap td.failed { background: repeating-linear-gradient(45deg, #fdd, #fdd 4px, #fff 4px, #fff 8px); color: #900;
  font-weight: 600; }
.heatmap td.pending { background: #f4f4f4; color: #777; font-style: italic; }
.heatmap td.skipped { background: #fafafa; color: #bbb; }
.legend span { display: inline-block; width: 52px; text-align: center; font-size: 12px; padding: 2px 0; }
.figures img { max-width: 100%; border: 1px solid #ddd; margin: 4px 0 12px 0; }
details.cell { border: 1px solid #ddd; border-radius: 4px; margin: 6px 0; padding: 4px 10px; }
details.cell summary { cursor: pointer; font-weight: 600; }
.utterance { border-top: 1px dashed #ccc; padding: 8px 0; }
.players { display: flex; flex-wrap: wrap; gap: 12px; }
.players figure { margin: 0; } .players figcaption { font-size: 13px; color: #555; }
.transcripts td { padding: 2px 8px; vertical-align: top; } .transcripts td:first-child { color: #555; }
ins { background: #cfc; text-decoration: none; } del { background: #fcc; }
.sub { background: #ffe08a; }
.metrics td, .metrics th { padding: 2px 10px; border-bottom: 1px solid #eee; text-align: right; }
img.spectrogram { width: 100%; max-width: 900px; height: 96px; image-rendering: pixelated; display: block; }
pre { background: #f7f7f7; padding: 8px; overflow-x: auto; font-size: 13px; }
.kv td { padding: 2px 10px; border-bottom: 1px solid #eee; vertical-align: top; }
.status-passed { color: #070; } .status-failed { color: #b00; font-weight: 600; } .status-not { color: #777; }
"""

#: Opens the drill-down a heatmap link points at (a closed <details> does not open by itself).
_SCRIPT = """
function openTarget() {
  var target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (target && target.tagName === "DETAILS") { target.open = true; target.scrollIntoView(); }
}
window.addEventListener("hashchange", openTarget);
window.addEventListener("DOMContentLoaded", openTarget);
"""


@dataclasses.dataclass(frozen=True)
class HeatmapCell:
    """One cell of the heatmap: a table row and column, its WER and status, and the grid cell behind it."""

    row: str
    column: str
    value: Optional[float]
    status: str
    key: Optional[str]
    error: str = ""


def heatmap_cells(
    layout: TableLayout, grid: Sequence[Cell], records: Mapping[str, Mapping[str, Any]]
) -> List[List[HeatmapCell]]:
    """
    :param layout: Rows and columns of Table I.
    :param grid: The run's cells.
    :param records: The current record of each cell key that has one.
    :return: Per table row, one :class:`HeatmapCell` per column of table1.csv after `System`.
    """
    # Table I's cells only: those of the attack-strength axis share a (row, attack, eps) with one of them.
    rows = [
        row
        for record in records.values()
        if record.get("status") == "ok"
        for row in record.get("rows", ())
        if not row.get("strength")
    ]
    values = table_values(layout, rows)
    by_position = {(cell.row, cell.attack, float(cell.eps)): cell for cell in grid if not cell.strength}
    per_row = {(cell.row, cell.attack): cell for cell in grid if not cell.strength}
    headers = layout.columns[1:]
    out = []
    for (label, clean_system), line in zip(layout.rows, values):
        cells: List[Optional[Cell]] = [by_position.get((clean_system, CLEAN, 0.0))]
        cells += [by_position.get((label, attack, eps)) for _, attack, eps in layout.attack_columns()]
        cells += [per_row.get((label, attack)) for _, attack, _ in layout.row_columns()]
        entries = []
        for header, value, cell in zip(headers, line, cells):
            record = records.get(cell.key) if cell is not None else None
            if cell is None:
                status, error = SKIPPED, ""
            elif record is not None and record.get("status") == "ok":
                status, error = OK, ""
            elif record is not None:
                status, error = FAILED, str(record.get("error", ""))
            else:
                status, error = PENDING, ""
            entries.append(HeatmapCell(label, header, value, status, None if cell is None else cell.key, error))
        out.append(entries)
    return out


def _legend_swatches(target: bool) -> str:
    """The swatches of one of the heatmap's colour scales, 0 to :data:`WER_SCALE_MAX` % in steps of 20."""
    legend = []
    for value in range(0, int(WER_SCALE_MAX) + 1, 20):
        background, colour = wer_colour(float(value), target=target)
        suffix = "+" if value == WER_SCALE_MAX else ""
        legend.append(f'<span style="background: {background}; color: {colour}">{value}{suffix} %</span>')
    return "".join(legend)


def _heatmap_html(layout: TableLayout, cells: List[List[HeatmapCell]], transfer_rows: int) -> str:
    targets = layout.target_columns
    # The darkest colour of the target scale underlines its columns' headers, tying them to their legend.
    target_header = (
        f' title="WER against the attacker\'s target phrase: low means the attack succeeded"'
        f' style="border-bottom: 3px solid {wer_colour(0.0, target=True)[0]}"'
    )
    lines = ['<table class="heatmap" id="table1">', "<thead><tr>"]
    lines += [
        f'<th scope="col"{target_header if column in targets else ""}>{escape(column)}</th>'
        for column in layout.columns
    ]
    lines.append("</tr></thead><tbody>")
    own_rows = len(layout.rows) - transfer_rows
    for index, row in enumerate(cells):
        if index == own_rows and transfer_rows:
            lines.append(f'<tr class="group"><th colspan="{len(layout.columns)}">Transfer attacks</th></tr>')
        kind = "transfer" if index >= own_rows else "system"
        lines.append(f'<tr class="{kind}"><th class="system" scope="row">{escape(layout.rows[index][0])}</th>')
        for entry in row:
            where = f"{entry.row} \u00b7 {entry.column}"
            attributes = (
                f'data-row="{escape(entry.row)}" data-column="{escape(entry.column)}" data-status="{entry.status}"'
            )
            target = entry.column in targets
            if target:
                attributes += ' data-scale="target"'
            if entry.status == OK and entry.value is not None:
                background, colour = wer_colour(entry.value, target=target)
                text = f"{entry.value:.1f}"
                title = f"{where}: WER {text} %"
                if target:
                    title += " against the attacker's target phrase (low: the attack succeeded)"
                style = f' style="background: {background}; color: {colour}"'
            elif entry.status == OK:
                text, title, style = "n/a", f"{where}: no reference words", ""
            elif entry.status == FAILED:
                text, title, style = (
                    "\u2715 failed",
                    f"{where}: failed: {entry.error.splitlines()[0] if entry.error else ''}",
                    "",
                )
            elif entry.status == PENDING:
                text, title, style = "not run", f"{where}: in the grid, not computed yet", ""
            else:
                text, title, style = "\u2014", f"{where}: not in this config's grid", ""
            if entry.key is not None and entry.status in (OK, FAILED):
                text = f'<a href="#{anchor(entry.key)}">{escape(text)}</a>'
            else:
                text = escape(text)
            lines.append(f'<td class="{entry.status}" {attributes} title="{escape(title)}"{style}>{text}</td>')
        lines.append("</tr>")
    lines.append("</tbody></table>")
    lines.append(
        f'<p class="legend">{"Ground-truth WER" if targets else "WER"}: '
        + _legend_swatches(False)
        + " &nbsp; <b>\u2715 failed</b>: the cell raised an error (see "
        "its drill-down and failures.csv); <i>not run</i>: in the grid, not computed yet; \u2014: not in this "
        "config's grid.</p>"
    )
    if targets:
        # The scale runs the other way: a reader must not take a target WER of 0 for a robust system.
        lines.append(
            f'<p class="legend" id="target-legend">Target WER ({escape(", ".join(targets))}: WER against the attacker\'s '
            f"target phrase): {_legend_swatches(True)} &nbsp; a <b>low</b> target WER means the attacker succeeded "
            "(0 %: the system transcribed exactly the attacker's phrase), so it is dark.</p>"
        )
    return "\n".join(lines)


def _key_values(pairs: Sequence[Tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><td>{escape(key)}</td><td>{escape(value)}</td></tr>" for key, value in pairs)
    return f'<table class="kv">{rows}</table>'


def _cpu_text(cpu: Optional[Mapping[str, Any]]) -> Optional[str]:
    """The CPU in words; tables on CPU reproduce exactly only on the same kind of CPU and thread count."""
    if not cpu:
        return None
    units = "with" if cpu.get("bf16_matmul") else "without"
    return f"{cpu.get('model')}, torch kernels {cpu.get('torch_capability')}, {units} bf16 matrix units"


def _provenance_html(run: Mapping[str, Any], checks: Optional[Mapping[str, Any]]) -> str:
    import yaml

    invocation = run.get("invocation", {})
    cells = invocation.get("cells", {})
    pairs = [
        ("config file", run.get("config_path")),
        ("seed", run.get("seed")),
        ("cell seeds", run.get("cell_seeds")),
        ("device", f"{run.get('device')} ({invocation.get('device', 'not recorded')})"),
        ("status", invocation.get("status")),
        ("started", invocation.get("started")),
        ("finished", invocation.get("finished")),
        ("wall time of this invocation", number_text(invocation.get("wall_time_s"), 1, " s")),
        ("cells", ", ".join(f"{count} {name}" for name, count in cells.items())),
        ("torch threads", invocation.get("torch_threads")),
        ("CPU", _cpu_text(run.get("cpu"))),
        ("art-asr-ext source digest", run.get("source_digest")),
        ("command", " ".join(str(arg) for arg in invocation.get("argv", []))),
    ]
    lines = ['<h2 id="provenance">Provenance</h2>', _key_values([(k, v) for k, v in pairs if v is not None])]
    lines.append("<h3>Versions</h3>")
    lines.append(_key_values(sorted((run.get("versions") or {}).items())))
    if checks:
        lines.append("<h3>Evaluation checks</h3>")
        rows = []
        for check in checks.get("checks", []):
            status = str(check.get("status", ""))
            details = "<br>".join(escape(detail) for detail in check.get("details", [])[:8])
            rows.append(
                f"<tr><td>({escape(check.get('check'))})</td><td>{escape(check.get('description'))}</td>"
                f'<td class="status-{escape(status.split()[0])}">{escape(status)}</td><td>{details}</td></tr>'
            )
        lines.append(f'<table class="kv">{"".join(rows)}</table>')
    lines.append("<h3>Config</h3>")
    lines.append(f"<pre>{escape(yaml.safe_dump(run.get('config'), sort_keys=False, allow_unicode=True))}</pre>")
    return "\n".join(lines)


def report_html(
    title: str,
    caption: str,
    layout: TableLayout,
    grid: Sequence[Cell],
    records: Mapping[str, Mapping[str, Any]],
    run: Mapping[str, Any],
    checks: Optional[Mapping[str, Any]],
    figures: Sequence[Tuple[str, str]],
) -> str:
    """
    :param title: The page's title.
    :param caption: A line under it (the table's caption).
    :param layout: Rows and columns of Table I.
    :param grid: The run's cells.
    :param records: The current record of each cell key that has one.
    :param run: The content of run.json.
    :param checks: The content of checks.json, or None.
    :param figures: `(file name relative to the report, caption)` of each figure to show.
    :return: report.html.
    """
    transfer_rows = len({cell.row for cell in grid if cell.is_transfer})
    figure_html = "".join(
        f'<figure><img src="{escape(name)}" alt="{escape(text)}"><figcaption>{escape(text)}</figcaption></figure>'
        for name, text in figures
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="caption">{escape(caption)} WER in percent, corpus-level. Click a cell for its utterances.</p>',
        '<h2 id="table">Table I</h2>',
        _heatmap_html(layout, heatmap_cells(layout, grid, records), transfer_rows),
    ]
    if figure_html:
        parts += ['<h2 id="figures">Figures</h2>', f'<div class="figures">{figure_html}</div>']
    parts += [
        '<h2 id="cells">Cells</h2>',
        '<p class="caption">Per cell, its first utterances: the clean clip, the adversarial clip and the defended '
        "input (what the recognizer received after its preprocessing defences, recorded as it transcribed), "
        'the transcripts with their word-level differences (<span class="sub">substituted</span>, '
        "<del>missing</del>, <ins>inserted</ins>), and the perturbation's measures.</p>",
        drill_down_html(grid, records, [label for label, _ in layout.rows]),
        _provenance_html(run, checks),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def referenced_files(records: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """
    :param records: The current record of each cell key.
    :return: The media files (relative to the output directory) the report links to, each once.
    """
    names = {}
    for record in records.values():
        for entry in record.get("report_media") or ():
            for kind in ("clean", "adversarial", "defended", "spectrogram"):
                if entry.get(kind):
                    names[entry[kind]] = None
    return list(names)


def write_report(
    out_dir: Path,
    title: str,
    caption: str,
    layout: TableLayout,
    grid: Sequence[Cell],
    records: Mapping[str, Mapping[str, Any]],
) -> Dict[str, Any]:
    """
    Write report.html in `out_dir` from its run.json, checks.json and figures.

    :param out_dir: The run's output directory.
    :param title: The page's title.
    :param caption: The table's caption.
    :param layout: Rows and columns of Table I.
    :param grid: The run's cells.
    :param records: The current record of each cell key that has one.
    :return: `{"files": number of files the report uses, "bytes": their size with report.html}`.
    """
    out_dir = Path(out_dir)

    def read_json(name: str) -> Optional[Dict[str, Any]]:
        try:
            return json.loads((out_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    figures = [
        (name, text)
        for name, text in (
            ("wer_vs_eps.png", "WER against the max-norm, one panel per system family (FGSM solid, PGD dashed)"),
            ("transfer_matrix.png", "Transfer matrix"),
            ("strength.png", "Ground-truth WER against the attack's strength (PGD iterations, EOT draws)"),
            ("table1_heatmap.png", "Table I as a heatmap (table1_heatmap.png, for papers and slides)"),
        )
        if (out_dir / name).is_file()
    ]
    text = report_html(
        title, caption, layout, grid, records, read_json("run.json") or {}, read_json("checks.json"), figures
    )
    atomic_write_text(out_dir / REPORT, text)
    used = referenced_files(records) + [name for name, _ in figures]
    size = len(text.encode("utf-8")) + sum(
        (out_dir / name).stat().st_size for name in used if (out_dir / name).is_file()
    )
    return {"files": len(used) + 1, "bytes": size}
