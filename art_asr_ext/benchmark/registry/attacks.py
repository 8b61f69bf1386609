"""
The registry of the benchmark's attacks: one :class:`AttackSpec` per attack, the one home of its config key, its
settings (defaults and bounds), its column title, how ART builds it, and what a cell of it costs.

Everything else follows from an entry: the config section ``attacks.<key>`` and a system's share of it
(:mod:`art_asr_ext.benchmark.config`), the cells (:mod:`art_asr_ext.benchmark.grid`), the table's columns and the
report's labels (:mod:`art_asr_ext.benchmark.outputs`), the dry run's pass counts and the attack-strength axis. So
adding an attack is its implementation (under ``attacks/``) and one :func:`register_attack` call.

ART and torch are imported only when an attack is built.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Tuple

from art_asr_ext.benchmark.config.fields import setting

if TYPE_CHECKING:
    from art_asr_ext.benchmark.grid import Cell

#: Most random restarts a PGD cell may take (each is a full PGD run and a transcription).
MAX_RESTARTS = 100
#: The column of every table row that no attack fills: the system's WER on clean audio.
CLEAN = "clean"


def format_eps(eps: float) -> str:
    """
    :param eps: A max-norm (or any budget).
    :return: Its shortest decimal form, as in a column header (`0.0001`, `0.2`).
    """
    text = f"{eps:.10f}".rstrip("0").rstrip(".")
    return text if float(text) == eps else repr(eps)


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """
    One attack of the benchmark.

    An attack with a `budget` has a list of budgets in its config section (`attacks.pgd.eps`), a cell and a column
    per budget, and a system may take a share of them (`systems[i].attacks.pgd.eps`). An attack without one
    (the imperceptible attack) has one cell per system, at its settings' `eps`, which a system may override
    (`systems[i].<key>`), and its columns are the same for every row.
    """

    #: Its key in a config, in a cell key and in utterances.csv (`pgd`).
    key: str
    #: Its name in column headers and labels (`PGD`).
    title: str
    #: The dataclass of its section's other keys, declared with :func:`~art_asr_ext.benchmark.config.fields.setting`
    #: (for an attack without a budget, its `eps` is the budget of its one cell).
    settings: type
    #: Builds ART's attack for a cell: `(cell, estimator, batch_size, max_length, seed) -> attack`. `max_length` is
    #: the longest utterance in samples, `seed` the cell's own seed.
    build: Callable[..., Any]
    #: Model passes per utterance of a cell: `(params, eot_samples) -> {"forward_backward": n, "forward": m}`.
    passes: Callable[[Mapping[str, Any], int], Dict[str, int]]
    #: The key of its budget list (`eps`, `snr_db`), or None for one cell per system.
    budget: Optional[str] = "eps"
    #: What one budget is, for the messages: `max-norm` or `SNR` (an SNR in dB between -60 and 120).
    budget_kind: str = "max-norm"
    #: Whether a cell is targeted, when no `targeted` setting says so.
    targeted: bool = False
    #: Whether more budget is a stronger attack (True: a max-norm; False: an SNR), for the evaluation checks; None:
    #: not checked (the random-noise baseline).
    stronger_with_budget: Optional[bool] = True
    #: Whether its cells repeat at each EOT variant of a system's defences (the attack-strength axis): an attack
    #: that follows the gradient through the defences.
    eot_axis: bool = True
    #: The columns of an attack without a budget: `(suffix, scored against the target phrase)`.
    columns: Tuple[Tuple[str, bool], ...] = ()
    #: Whether it only calls the recognizer's `predict` (a black-box attack): it may attack a black-box system
    #: (PocketSphinx), and its attack object counts its `predict` calls per utterance of the last `generate` in
    #: `queries` (utterances.csv's `queries` column, queries.csv), against the budget in its `max_queries` setting.
    black_box: bool = False
    #: Whether a system runs it only when it names it (`systems[i].attacks.<key>`, or `systems[i].<key>` for an
    #: attack without a budget), rather than whenever the config's `attacks` section has it.
    opt_in: bool = False
    #: Whether transfer rows take its examples by default (`transfer[i].attacks` left out).
    transferable: bool = True
    #: For an attack whose examples are heard elsewhere than the digital input (over the air): `(attack, x_adv,
    #: batch_size) -> transcripts per utterance`, one per place (test room); their errors are summed in a row.
    transcribe: Optional[Callable[[Any, Any, int], Any]] = None
    #: Whether its build takes `cache_dir`: a folder of the run where what it generates once is kept (rooms).
    cached: bool = False
    #: Whether its examples differ from the clean speech. False for the clean speech heard elsewhere (in rooms): no
    #: perturbation to score (SNR, PGD, STOI, spectrogram) and no attacker whose strength the checks compare.
    perturbs: bool = True

    def column(self, budget: float) -> str:
        """
        :param budget: One of its budgets.
        :return: The header of its column (`PGD 0.01`, `PGD SNR 35 dB`).
        """
        if self.budget_kind == "SNR":
            return f"{self.title} {format_eps(budget)} dB"
        return f"{self.title} {format_eps(budget)}"

    def cell_label(self, budget: float) -> str:
        """
        :param budget: The cell's budget.
        :return: How the evaluation checks name a cell: its title in capitals and its budget (`PGD 0.01`,
                 `NOISE 0.01`, `PGD SNR 35 dB`), as checks.json always has.
        """
        return dataclasses.replace(self, title=self.title.upper()).column(budget)

    def is_targeted(self, settings: Mapping[str, Any]) -> bool:
        """
        :param settings: The attack's parsed settings.
        :return: Whether its cells are targeted: its `targeted` setting (given, or its default), else the attack's own.
        """
        if "targeted" in settings:
            return bool(settings["targeted"])
        fields = {f.name: f for f in dataclasses.fields(self.settings)}
        return bool(fields["targeted"].default) if "targeted" in fields else self.targeted

    def params(self, settings: Mapping[str, Any]) -> Dict[str, Any]:
        """
        :param settings: The attack's parsed settings (Table I values).
        :return: The settings a cell carries to its build and fingerprint: all but `targeted` (a field of the cell),
                 sorted by name, with a setting at its "off" value left out where the attack says so.
        """
        return {
            name: value
            for name, value in sorted(settings.items())
            if name != "targeted" and not (name in _ABSENT_AT_ZERO.get(self.key, ()) and not value)
        }

    def strength_axes(self) -> Tuple[str, ...]:
        """The settings of its section that may be a list: their first value fills Table I, the others strength.csv."""
        return tuple(f.name for f in dataclasses.fields(self.settings) if f.metadata.get("axis"))


#: Settings a cell leaves out at 0, so that cells from before the setting existed keep their keys and parameters.
_ABSENT_AT_ZERO = {"pgd": ("num_random_init",)}

#: The attacks, in the order of the table's columns.
ATTACKS: Dict[str, AttackSpec] = {}


def register_attack(spec: AttackSpec) -> AttackSpec:
    """
    Add an attack to the benchmark: its config section, cells, columns, dry-run cost and report labels follow.

    :param spec: The attack.
    :return: `spec`.
    :raises ValueError: If its key is taken or is not a plain name.
    """
    if spec.key in ATTACKS or spec.key == CLEAN or not spec.key.isidentifier():
        raise ValueError(f"attack key must be a new identifier. Found: {spec.key!r}")
    ATTACKS[spec.key] = spec
    return spec


def attack_order() -> Tuple[str, ...]:
    """The order of the attacks in the table and in utterances.csv, `clean` first."""
    return (CLEAN,) + tuple(ATTACKS)


# --------------------------------------------------------------------------------------------------------------------
# The attacks of the study and of its successors
# --------------------------------------------------------------------------------------------------------------------


def _gradient_passes(params: Mapping[str, Any], eot_samples: int) -> Dict[str, int]:
    """A gradient attack's passes: `max_iter` steps (one for FGSM) of `eot_samples` draws, times its restarts."""
    if params.get("eot_samples"):  # a cell on the EOT axis brings its own draws
        eot_samples = max(int(draws) for draws in params["eot_samples"].values())
    steps = int(params.get("max_iter", 1))
    restarts = int(params.get("num_random_init", 0))
    if restarts:  # each restart is a full PGD run and a transcription to pick the worst case
        return {"forward_backward": steps * eot_samples * restarts, "forward": restarts + 1}
    return {"forward_backward": steps * eot_samples, "forward": 1}


def _forward_only(params: Mapping[str, Any], eot_samples: int) -> Dict[str, int]:
    return {"forward_backward": 0, "forward": 1}


@dataclasses.dataclass(frozen=True)
class NoiseSettings:
    """The random-noise baseline has no setting besides its max-norms."""


def _build_noise(cell: "Cell", estimator, batch_size: int, max_length: int, seed: int):
    import numpy as np

    from art_asr_ext.attacks.evasion import UniformNoiseBaseline

    # The noise's own seed is drawn from the cell's seed, as it always was, so that tables stay the same.
    return UniformNoiseBaseline(estimator, eps=cell.eps, seed=int(np.random.RandomState(seed).randint(2**31 - 1)))


register_attack(
    AttackSpec(
        key="noise",
        title="Noise",
        settings=NoiseSettings,
        build=_build_noise,
        passes=_forward_only,
        stronger_with_budget=None,
        eot_axis=False,
    )
)


@dataclasses.dataclass(frozen=True)
class FGSMSettings:
    """FGSM (Goodfellow et al.): one step of the max-norm, toward the target phrase as in the study (its eq. 1)."""


@dataclasses.dataclass(frozen=True)
class UntargetedFGSMSettings:
    """FGSM-U: one step of the max-norm away from the reference (not the study's protocol)."""


def _build_fgsm(cell: "Cell", estimator, batch_size: int, max_length: int, seed: int):
    import numpy as np
    from art.attacks.evasion import FastGradientMethod

    return FastGradientMethod(
        estimator,
        norm=np.inf,
        eps=cell.eps,
        eps_step=cell.eps,
        targeted=cell.targeted,
        num_random_init=0,
        batch_size=batch_size,
    )


register_attack(
    AttackSpec(
        key="fgsm", title="FGSM", settings=FGSMSettings, build=_build_fgsm, passes=_gradient_passes, targeted=True
    )
)
register_attack(
    AttackSpec(
        key="fgsm_u", title="FGSM-U", settings=UntargetedFGSMSettings, build=_build_fgsm, passes=_gradient_passes
    )
)


@dataclasses.dataclass(frozen=True)
class PGDSettings:
    """PGD under the L-infinity norm (Madry et al.), the study's 7 iterations of step eps / 5."""

    max_iter: Tuple[int, ...] = setting(
        7, axis="iterations", doc="iterations; a list adds PGD cells on the attack-strength axis (strength.csv)"
    )
    step_ratio: float = setting(0.2, positive=True, doc="step as a fraction of the max-norm")
    targeted: bool = setting(True, doc="toward the target phrase (the study's protocol)")
    num_random_init: int = setting(
        0, minimum=0, maximum=MAX_RESTARTS, doc="random restarts, keeping each utterance's worst case"
    )


def _build_pgd(cell: "Cell", estimator, batch_size: int, max_length: int, seed: int):
    import numpy as np
    from art.attacks.evasion import ProjectedGradientDescent

    from art_asr_ext.attacks.evasion import RandomRestartProjectedGradientDescent

    common = dict(
        eps=cell.eps,
        eps_step=cell.eps * float(cell.params["step_ratio"]),
        max_iter=int(cell.params["max_iter"]),
        targeted=cell.targeted,
        batch_size=batch_size,
    )
    if cell.params.get("num_random_init", 0):
        return RandomRestartProjectedGradientDescent(
            estimator, num_random_init=int(cell.params["num_random_init"]), **common
        )
    return ProjectedGradientDescent(estimator, norm=np.inf, num_random_init=0, verbose=False, **common)


register_attack(AttackSpec(key="pgd", title="PGD", settings=PGDSettings, build=_build_pgd, passes=_gradient_passes))


@dataclasses.dataclass(frozen=True)
class PGDSNRSettings:
    """PGD under the L2 norm with a budget per utterance stated as an SNR in dB (Olivier & Raj's 35 and 40 dB)."""

    max_iter: int = setting(50, minimum=1, doc="iterations")
    step_ratio: float = setting(0.1, positive=True, doc="step as a fraction of each utterance's L2 budget")
    targeted: bool = setting(False, doc="toward the target phrase instead of away from the reference")


def _build_pgd_snr(cell: "Cell", estimator, batch_size: int, max_length: int, seed: int):
    from art_asr_ext.attacks.evasion import SNRProjectedGradientDescent

    return SNRProjectedGradientDescent(
        estimator,
        snr_db=cell.eps,
        step_ratio=float(cell.params["step_ratio"]),
        max_iter=int(cell.params["max_iter"]),
        targeted=cell.targeted,
        batch_size=batch_size,
    )


register_attack(
    AttackSpec(
        key="pgd_snr",
        title="PGD SNR",
        settings=PGDSNRSettings,
        build=_build_pgd_snr,
        passes=_gradient_passes,
        budget="snr_db",
        budget_kind="SNR",
        stronger_with_budget=False,
    )
)

#: Settings of ART's ImperceptibleASRPyTorch that the run decides, not the config.
IMPERCEPTIBLE_FROM_RUN = ("batch_size", "global_max_length", "optimizer_1", "optimizer_2", "use_amp", "opt_level")


@dataclasses.dataclass(frozen=True)
class ImperceptibleSettings:
    """
    Qin et al.'s imperceptible attack, ART's `ImperceptibleASRPyTorch`: its `attack_params` less those the run
    decides (:data:`IMPERCEPTIBLE_FROM_RUN`), at ART's defaults (a test checks them against ART's signature).
    """

    eps: float = setting(0.05, positive=True, doc="max-norm of the first stage")
    max_iter_1: int = setting(10, minimum=1, doc="iterations of the first stage")
    max_iter_2: int = setting(4000, minimum=1, doc="iterations of the second (masking-threshold) stage")
    learning_rate_1: float = setting(0.001, positive=True)
    learning_rate_2: float = setting(0.0005, positive=True)
    initial_rescale: float = setting(1.0, positive=True)
    decrease_factor_eps: float = setting(0.8, positive=True)
    num_iter_decrease_eps: int = setting(1, minimum=1)
    alpha: float = setting(1.2, positive=True)
    increase_factor_alpha: float = setting(1.2, positive=True)
    num_iter_increase_alpha: int = setting(20, minimum=1)
    decrease_factor_alpha: float = setting(0.8, positive=True)
    num_iter_decrease_alpha: int = setting(20, minimum=1)
    win_length: int = setting(2048, minimum=1)
    hop_length: int = setting(512, minimum=1)
    n_fft: int = setting(2048, minimum=1)


def _build_imperceptible(cell: "Cell", estimator, batch_size: int, max_length: int, seed: int):
    from art_asr_ext.attacks.evasion import RaggedImperceptibleASRPyTorch

    return RaggedImperceptibleASRPyTorch(
        estimator, batch_size=batch_size, global_max_length=int(max_length), **dict(cell.params)
    )


def _imperceptible_passes(params: Mapping[str, Any], eot_samples: int) -> Dict[str, int]:
    return {"forward_backward": int(params["max_iter_1"]) + int(params["max_iter_2"]), "forward": 1}


register_attack(
    AttackSpec(
        key="imperceptible",
        title="Imperceptible",
        settings=ImperceptibleSettings,
        build=_build_imperceptible,
        passes=_imperceptible_passes,
        budget=None,
        targeted=True,
        stronger_with_budget=None,
        eot_axis=False,
        columns=(("GT", False), ("TGT", True)),
    )
)
