"""
Sanity checks of an evaluation, after Carlini et al., "On Evaluating Adversarial Robustness" (arXiv 1902.06705):
patterns any sound attack grid shows, whose failure points at a weak attack or at gradient masking (Athalye et al.,
arXiv 1802.00420), the way randomised and hard-to-differentiate preprocessors such as RS and vocoders can hide it.

Each check is `passed`, `failed` (naming the cells involved) or `not applicable` (the grid lacks the cells it
compares). A failed check is a finding about the evaluation, not an error: the run still succeeds. They are written
to ``checks.json`` and listed under "Evaluation checks" in ``table1.md``.

| Paper link: https://arxiv.org/abs/1902.06705
"""

import dataclasses
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from art_asr_ext.benchmark.config.schema import BenchmarkConfig, SystemConfig
from art_asr_ext.benchmark.grid import cell_key, group_of
from art_asr_ext.benchmark.outputs.scores import cell_wers
from art_asr_ext.benchmark.outputs.strength import cell_strength, strength_wers
from art_asr_ext.benchmark.registry import ATTACKS, DEFENCES, format_eps

#: Slack of every comparison: one word error per 100 reference words, so that a one-word tie on a small corpus is no
#: finding.
TOLERANCE = 1.0

PASSED, FAILED, NOT_APPLICABLE = "passed", "failed", "not applicable"
#: Violations listed per check in table1.md (checks.json has them all).
MARKDOWN_DETAILS = 8


@dataclasses.dataclass
class CheckResult:
    """The outcome of one check."""

    check: str
    description: str
    status: str
    #: One line per violation (failed) or the reason it does not apply.
    details: List[str] = dataclasses.field(default_factory=list)
    #: Keys of the cells involved in the violations.
    cells: List[str] = dataclasses.field(default_factory=list)
    compared: int = 0


def _label(attack_key: str, eps: float, strength: str = "") -> str:
    label = ATTACKS[attack_key].cell_label(eps)
    return f"{label} ({strength})" if strength else label


def _along_strength(config: BenchmarkConfig, strengths, name: str):
    """
    Per (row, attack, eps) with strength cells varying `name` (`max_iter` or `eot_samples`): its cells from the
    weakest to the strongest, as (strength value, strength label, WER), the Table I cell under an empty label.
    """
    other = "eot_samples" if name == "max_iter" else "max_iter"
    by_cell: Dict[Tuple[str, str, float], List[Tuple[int, str, Optional[float]]]] = {}
    for (row, attack, eps, strength), value in strengths.items():
        if strength and not strength.startswith(f"{name}="):
            continue
        settings = cell_strength(config, config.row_system(row), attack, strength)
        table = cell_strength(config, config.row_system(row), attack, "")
        if settings[other] == table[other]:
            by_cell.setdefault((row, attack, eps), []).append((settings[name], strength, value))
    return {key: sorted(cells) for key, cells in by_cell.items() if len(cells) > 1}


def _result(check: str, description: str, compared: int, violations: List[Tuple[str, List[str]]], missing: str):
    if not compared:
        return CheckResult(check, description, NOT_APPLICABLE, [missing])
    cells = sorted({cell for _, keys in violations for cell in keys})
    status = FAILED if violations else PASSED
    return CheckResult(check, description, status, [line for line, _ in violations], cells, compared)


def _weaker_when_stronger(config: BenchmarkConfig, strengths, name: str) -> Tuple[List[Tuple[str, List[str]]], int]:
    """Violations where more `name` (`max_iter` or `eot_samples`) of the same attack and budget lowers ground-truth
    WER by more than the tolerance, and the number of comparisons."""
    violations, compared = [], 0
    for (row, attack, eps), cells in sorted(_along_strength(config, strengths, name).items()):
        for (_, weak, before), (_, strong, after) in zip(cells, cells[1:]):
            if before is None or after is None:
                continue
            compared += 1
            if after < before - TOLERANCE:
                violations.append(
                    (
                        f"{row}: {_label(attack, eps, strong)} {after:.1f} % < "
                        f"{_label(attack, eps, weak or 'Table I')} {before:.1f} %",
                        [cell_key(row, attack, eps, weak), cell_key(row, attack, eps, strong)],
                    )
                )
    return violations, compared


def check_monotone(config: BenchmarkConfig, wers, strengths=None) -> CheckResult:
    """(a) A stronger budget, or more iterations, of the same attack never lowers ground-truth WER by more than the
    tolerance."""
    violations, compared = [], 0
    strengths = strengths or {}
    for row in config.row_labels:
        for attack, spec in ATTACKS.items():
            if spec.stronger_with_budget is None:
                continue
            # A larger max-norm is a stronger attack; a lower SNR is a larger perturbation.
            budgets = sorted(eps for (label, kind, eps) in wers if label == row and kind == attack)
            if not spec.stronger_with_budget:
                budgets.reverse()
            for weaker, stronger in zip(budgets, budgets[1:]):
                before, after = wers[(row, attack, weaker)][0], wers[(row, attack, stronger)][0]
                if before is None or after is None:
                    continue
                compared += 1
                if after < before - TOLERANCE:
                    violations.append(
                        (
                            f"{row}: {_label(attack, weaker)} {before:.1f} % > {_label(attack, stronger)} {after:.1f} %",
                            [cell_key(row, attack, weaker), cell_key(row, attack, stronger)],
                        )
                    )
    # More iterations of the same attack and budget (the attack-strength axis).
    more, more_compared = _weaker_when_stronger(config, strengths, "max_iter")
    violations, compared = violations + more, compared + more_compared
    return _result(
        "a",
        "a stronger budget or more iterations of the same attack never lowers ground-truth WER (by more than 1 word "
        "per 100)",
        compared,
        violations,
        "no attack was run at two budgets or iteration counts on one row",
    )


def _pgd_versus(wers, baseline: str, name: str) -> Tuple[List[Tuple[str, List[str]]], int]:
    """Violations where PGD does worse than `baseline` (an attack at the same max-norm on the same row)."""
    violations, compared = [], 0
    for (row, attack, eps), (other, _) in sorted(wers.items()):
        if attack != baseline or (row, "pgd", eps) not in wers:
            continue
        pgd = wers[(row, "pgd", eps)][0]
        if other is None or pgd is None:
            continue
        compared += 1
        if pgd < other - TOLERANCE:
            violations.append(
                (
                    f"{row}: PGD {format_eps(eps)} {pgd:.1f} % < {name} {format_eps(eps)} {other:.1f} %",
                    [cell_key(row, baseline, eps), cell_key(row, "pgd", eps)],
                )
            )
    return violations, compared


def check_pgd_beats_fgsm(config: BenchmarkConfig, wers) -> CheckResult:
    """(b) PGD at least as strong as FGSM at the same max-norm."""
    violations, compared = _pgd_versus(wers, "fgsm", "FGSM")
    description = "PGD is at least as strong as FGSM at equal max-norm (ground-truth WER)"
    pgd, fgsm = (ATTACKS[key].is_targeted(config.attacks.settings(key)) for key in ("pgd", "fgsm"))
    if pgd != fgsm:
        # Targeted PGD steers toward a phrase of similar length, so it may err less on the reference than
        # untargeted FGSM; the check still reports it, saying so.
        description += (
            f" (here PGD is {'' if pgd else 'un'}targeted and FGSM {'' if fgsm else 'un'}targeted: their objectives "
            f"differ)"
        )
    return _result("b", description, compared, violations, "no row has FGSM and PGD at the same max-norm")


def _attacker_view(system: SystemConfig) -> Tuple[Any, ...]:
    """A system less what the attacker's knowledge changes: vocoder mode and EOT draws."""
    defences = tuple(
        (d.type, repr({k: v for k, v in sorted(d.settings.items()) if k not in DEFENCES[d.type].attacker_settings}))
        for d in system.defences
    )
    return (repr(system.estimator), defences)


def _strength(system: SystemConfig) -> Tuple[int, int]:
    """(defences attacked white-box or with their true gradient rather than BPDA, most EOT draws): an attacker at
    least as strong in both sees at least as much."""
    return (
        sum(
            d.settings.get("mode") == "white-box" or d.settings.get("gradient") == "true-gradient"
            for d in system.defences
        ),
        system.eot_samples,
    )


def check_adaptive_beats_bpda(config: BenchmarkConfig, wers, strengths=None) -> CheckResult:
    """(c) On the same defended system, a white-box or EOT attacker is at least as strong as BPDA or EOT 1: across
    systems that differ only in the attacker's view, and across a system's cells with more EOT draws."""
    violations, compared = _weaker_when_stronger(config, strengths or {}, "eot_samples")
    defended = [system for system in config.systems if system.defences]
    for weak in defended:
        for strong in defended:
            if weak is strong or _attacker_view(weak) != _attacker_view(strong):
                continue
            weak_strength, strong_strength = _strength(weak), _strength(strong)
            if weak_strength == strong_strength or any(s < w for s, w in zip(strong_strength, weak_strength)):
                continue
            for (row, attack, eps), (value, _) in sorted(wers.items()):
                if row != weak.label or attack == "clean" or not ATTACKS[attack].perturbs:
                    continue
                if (strong.label, attack, eps) not in wers:
                    continue
                stronger = wers[(strong.label, attack, eps)][0]
                if value is None or stronger is None:
                    continue
                compared += 1
                if stronger < value - TOLERANCE:
                    violations.append(
                        (
                            f"{_label(attack, eps)}: {strong.label} {stronger:.1f} % < {weak.label} {value:.1f} %",
                            [cell_key(weak.label, attack, eps), cell_key(strong.label, attack, eps)],
                        )
                    )
    return _result(
        "c",
        "a white-box or EOT attack on a defended system is at least as strong as BPDA or EOT 1 on it",
        compared,
        violations,
        "no defended system is attacked both white-box (or with more EOT draws) and with BPDA (or fewer draws)",
    )


def check_transfer_weaker(config: BenchmarkConfig, wers) -> CheckResult:
    """(d) A transfer attack raises its target's WER less than the white-box attack raises its source's."""
    violations, compared = [], 0
    for transfer in config.transfer:
        target_clean = wers.get((transfer.target, "clean", 0.0), (None, None))[0]
        source_clean = wers.get((transfer.source, "clean", 0.0), (None, None))[0]
        if target_clean is None or source_clean is None:
            continue
        for (row, attack, eps), (value, _) in sorted(wers.items()):
            if row != transfer.label or (transfer.source, attack, eps) not in wers:
                continue
            white_box = wers[(transfer.source, attack, eps)][0]
            if value is None or white_box is None:
                continue
            compared += 1
            gain, white_gain = value - target_clean, white_box - source_clean
            if gain > white_gain + TOLERANCE:
                violations.append(
                    (
                        f"{transfer.label}, {_label(attack, eps)}: +{gain:.1f} points on the target > +{white_gain:.1f} "
                        f"white-box on {transfer.source}",
                        [cell_key(transfer.label, attack, eps), cell_key(transfer.source, attack, eps)],
                    )
                )
    return _result(
        "d",
        "a transfer attack is weaker than the white-box attack on its source (WER gained over clean)",
        compared,
        violations,
        "no transfer rows",
    )


def check_noise_baseline(config: BenchmarkConfig, wers) -> CheckResult:
    """(e) Random noise at the same L-infinity is weaker than PGD."""
    violations, compared = _pgd_versus(wers, "noise", "uniform noise")
    return _result(
        "e",
        "a random-noise baseline (uniform noise at the same L-infinity) is weaker than PGD",
        compared,
        violations,
        "no row has the noise baseline (`attacks.noise`) and PGD at the same max-norm",
    )


def check_unbounded_pgd(config: BenchmarkConfig, wers, rows: Sequence[Mapping[str, Any]]) -> CheckResult:
    """(f) Unbounded PGD (max-norm >= 1) reaches a target on every undefended system."""
    violations, compared = [], 0
    for system in config.systems:
        if system.defences or not ATTACKS["pgd"].is_targeted(config.attacks.settings("pgd")):
            continue
        for eps in system.budgets("pgd"):
            if eps < 1.0 or (system.label, "pgd", float(eps)) not in wers:
                continue
            compared += 1
            cell = [r for r in rows if group_of(r) == (system.label, "pgd", float(eps))]
            best = min(100.0 * int(r["tgt_errors"]) / max(int(r["tgt_words"]), 1) for r in cell)
            if best > 10.0:
                violations.append(
                    (
                        f"{system.label}: PGD {format_eps(eps)} reaches target WER {best:.1f} % at best (> 10 %)",
                        [cell_key(system.label, "pgd", float(eps))],
                    )
                )
    return _result(
        "f",
        "an unbounded targeted PGD (max-norm >= 1) on each undefended system reaches target WER <= 10 % on an utterance",
        compared,
        violations,
        "no targeted PGD cell at max-norm >= 1 on an undefended system",
    )


def evaluation_checks(config: BenchmarkConfig, rows: Iterable[Mapping[str, Any]]) -> List[CheckResult]:
    """
    :param config: The benchmark.
    :param rows: Utterance rows of every finished cell.
    :return: Checks (a) to (f), in order.
    """
    rows = list(rows)
    wers, strengths = cell_wers(rows), strength_wers(rows)
    table_rows = [row for row in rows if not row.get("strength")]
    return [
        check_monotone(config, wers, strengths),
        check_pgd_beats_fgsm(config, wers),
        check_adaptive_beats_bpda(config, wers, strengths),
        check_transfer_weaker(config, wers),
        check_noise_baseline(config, wers),
        check_unbounded_pgd(config, wers, table_rows),
    ]


def checks_markdown(results: Sequence[CheckResult]) -> str:
    """
    :param results: From :func:`evaluation_checks`.
    :return: The "Evaluation checks" section of table1.md.
    """
    lines = ["Evaluation checks (checks.json; a failed check is a finding about the evaluation, not an error):", ""]
    for result in results:
        summary = f"- ({result.check}) {result.description}: **{result.status}**"
        if result.status == NOT_APPLICABLE:
            summary += f" ({result.details[0]})"
        elif result.status == PASSED:
            summary += f" ({result.compared} comparisons)"
        lines.append(summary)
        if result.status == FAILED:
            lines += [f"  - {detail}" for detail in result.details[:MARKDOWN_DETAILS]]
            if len(result.details) > MARKDOWN_DETAILS:
                lines.append(f"  - ... and {len(result.details) - MARKDOWN_DETAILS} more (checks.json)")
    return "\n".join(lines) + "\n"


def checks_json(results: Sequence[CheckResult]) -> Dict[str, Any]:
    """
    :param results: From :func:`evaluation_checks`.
    :return: The content of checks.json.
    """
    return {"tolerance_points": TOLERANCE, "checks": [dataclasses.asdict(result) for result in results]}
