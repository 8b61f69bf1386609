"""
report.html's drill-down: per cell, its WER, and per utterance the audio players (clean, adversarial, defended), the
transcripts with their word-level differences against the reference and the target, the perturbation's SNR, PESQ,
STOI and L∞, and its spectrogram.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
import html
import math
from typing import Any, Mapping, Optional, Sequence

from art_asr_ext.benchmark.grid import CLEAN, Cell
from art_asr_ext.benchmark.outputs.scores import wer_percent
from art_asr_ext.benchmark.registry import ATTACKS, format_eps
from art_asr_ext.benchmark.store import slug
from art_asr_ext.metrics.wer import word_alignment


def escape(value: Any) -> str:
    """:return: `value` as HTML text (quotes escaped too, for attributes)."""
    return html.escape(str(value), quote=True)


def anchor(key: str) -> str:
    """
    :param key: A cell key.
    :return: The id of its drill-down in report.html.
    """
    return f"cell-{slug(key)}"


def transcript_diff_html(reference: str, hypothesis: str) -> str:
    """
    :param reference: The text the hypothesis is scored against (reference or target).
    :param hypothesis: The recognised text.
    :return: The hypothesis as HTML with its word-level differences marked: substitutions highlighted (the reference
             word in their title), reference words it misses struck out (`<del>`), words it adds underlaid (`<ins>`).
    """
    parts = []
    for operation, reference_words, hypothesis_words in word_alignment(reference, hypothesis):
        if operation == "equal":
            parts.append(escape(" ".join(hypothesis_words)))
        elif operation == "substitute":
            for wanted, got in zip(reference_words, hypothesis_words):
                parts.append(f'<span class="sub" title="{escape(wanted)}">{escape(got)}</span>')
        elif operation == "delete":
            parts.append(f"<del>{escape(' '.join(reference_words))}</del>")
        else:
            parts.append(f"<ins>{escape(' '.join(hypothesis_words))}</ins>")
    return " ".join(parts) if parts else "<i>(empty)</i>"


def number_text(value: Any, digits: int = 2, unit: str = "") -> str:
    if value is None or value == "":
        return "\u2014"
    value = float(value)
    if math.isinf(value):
        return "\u221e"
    return f"{value:.{digits}f}{unit}"


def _player(label: str, path: Optional[str], entry: Mapping[str, Any]) -> str:
    if path is None:
        return ""
    return (
        f'<figure><figcaption>{escape(label)}</figcaption><audio controls preload="none" src="{escape(path)}" '
        f"data-utterance=\"{escape(entry['utterance_id'])}\" data-seconds=\"{float(entry['seconds']):.4f}\">"
        f'<a href="{escape(path)}">{escape(path)}</a></audio></figure>'
    )


def _utterance_html(cell: Cell, entry: Mapping[str, Any], row: Optional[Mapping[str, Any]]) -> str:
    lines = [f'<div class="utterance"><b>{escape(entry["utterance_id"])}</b> ({float(entry["seconds"]):.2f} s)']
    players = [_player("clean", entry.get("clean"), entry)]
    if cell.attack != "clean":
        source = "" if not cell.is_transfer else f" (made on {cell.source})"
        players.append(_player(f"adversarial{source}", entry.get("adversarial"), entry))
    players.append(_player(f"defended input to {cell.system}", entry.get("defended"), entry))
    lines.append('<div class="players">' + "".join(players) + "</div>")
    if row is not None:
        targeted = "targeted attack" if cell.targeted else "not the attack's goal: shown for comparison"
        lines.append('<table class="transcripts">')
        lines.append(f"<tr><td>reference</td><td>{escape(row['reference'])}</td></tr>")
        lines.append(
            f"<tr><td>hypothesis vs reference ({row['gt_errors']}/{row['gt_words']} errors)</td>"
            f"<td>{transcript_diff_html(row['reference'], row['hypothesis'])}</td></tr>"
        )
        lines.append(f"<tr><td>target ({escape(targeted)})</td><td>{escape(row['target'])}</td></tr>")
        lines.append(
            f"<tr><td>hypothesis vs target ({row['tgt_errors']}/{row['tgt_words']} errors)</td>"
            f"<td>{transcript_diff_html(row['target'], row['hypothesis'])}</td></tr>"
        )
        lines.append("</table>")
        lines.append(
            '<table class="metrics"><tr><th>SNR</th><th>PESQ</th><th>STOI</th><th>L\u221e</th></tr>'
            f"<tr><td>{number_text(row.get('snr_db'), 1, ' dB')}</td><td>{number_text(row.get('pesq'))}</td>"
            f"<td>{number_text(row.get('stoi'))}</td><td>{number_text(row.get('linf'), 5)}</td></tr></table>"
        )
        if row.get("perceptual_note"):
            lines.append(f"<p class=\"caption\">{escape(row['perceptual_note'])}</p>")
    if entry.get("spectrogram"):
        low, high = -100, -20
        lines.append(
            f'<img class="spectrogram" loading="lazy" src="{escape(entry["spectrogram"])}" alt="spectrogram of the perturbation">'
            f'<p class="caption">Spectrogram of the perturbation x<sub>adv</sub> \u2212 x: 0\u20138 kHz bottom to top, '
            f"32 ms windows, colour {low} (black) to {high} dB (yellow) relative to a full-scale sine.</p>"
        )
    lines.append("</div>")
    return "\n".join(lines)


def _cell_title(cell: Cell) -> str:
    if cell.strength:
        return f"{_cell_title(dataclasses.replace(cell, strength=''))}, {cell.strength.replace('_', ' ')}"
    if cell.attack == CLEAN:
        return "Clean"
    spec = ATTACKS[cell.attack]
    if not spec.perturbs:
        return spec.title
    return f"{spec.title} (eps {format_eps(cell.eps)})" if spec.budget is None else spec.column(cell.eps)


def drill_down_html(grid: Sequence[Cell], records: Mapping[str, Mapping[str, Any]], row_order: Sequence[str]) -> str:
    lines = []
    position = {label: index for index, label in enumerate(row_order)}
    for row_label in sorted({cell.row for cell in grid}, key=lambda label: position.get(label, len(position))):
        lines.append(f"<h3>{escape(row_label)}</h3>")
        for cell in [cell for cell in grid if cell.row == row_label]:
            record = records.get(cell.key)
            if record is None:
                continue
            title = _cell_title(cell)
            if record.get("status") != "ok":
                summary = f"{title}: \u2715 failed"
                body = f"<pre>{escape(record.get('error', ''))}</pre>"
            else:
                rows = list(record.get("rows", ()))
                wer = wer_percent(rows)
                summary = f"{title}: WER {number_text(wer, 1, ' %')}"
                if cell.targeted:
                    summary += f", {number_text(wer_percent(rows, target=True), 1, ' %')} against the targets"
                by_utterance = {row["utterance_id"]: row for row in rows}
                media = record.get("report_media")
                if media is None:
                    body = "<p>No media: this cell was computed before the report kept its audio.</p>"
                elif not media:
                    body = "<p>No media (<code>report.utterances</code> is 0).</p>"
                else:
                    body = "\n".join(
                        _utterance_html(cell, entry, by_utterance.get(entry["utterance_id"])) for entry in media
                    )
                body = (
                    f"<p class=\"caption\">{len(rows)} utterances, {float(record.get('seconds', 0)):.1f} s.</p>" + body
                )
            lines.append(
                f'<details class="cell" id="{anchor(cell.key)}"><summary>{escape(summary)}</summary>\n{body}\n</details>'
            )
    return "\n".join(lines)
