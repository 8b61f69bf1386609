"""
The vocoder defence's settings that need neither torch nor ART: the attacker's views of it and the generator's
precision. :class:`~art_asr_ext.defences.preprocessor.WaveGANVocoderPyTorch` and the benchmark's registry (which
loads a config without importing torch) both take them from here.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from art_asr_ext.utils.environment import resolve_precision

#: The attacker's views of a vocoder defence: its gradient skips the vocoder (BPDA with the identity), or it
#: differentiates through the vocoder.
VOCODER_MODES = ("black-box", "white-box")


def vocoder_precision(precision: str, mode: str, device: str) -> str:
    """
    The precision a vocoder defence's generator runs in where nothing differentiates it.

    :param precision: `fp32`, `bf16` or `auto`.
    :param mode: One of :data:`VOCODER_MODES`.
    :param device: `cpu`, or the GPU's (`gpu`, `cuda`).
    :return: `precision` with `auto` resolved: fp32 against a white-box attacker, whose gradient is always float32, so
             that the defence that judges an adversarial example is the one it was optimised through; otherwise
             :func:`~art_asr_ext.utils.environment.resolve_precision` (bf16 on a CPU with bf16 matrix units).
    :raises ValueError: For an unknown precision or mode.
    """
    if mode not in VOCODER_MODES:
        raise ValueError(f"mode must be one of {VOCODER_MODES}. Found: {mode!r}")
    if precision == "auto" and mode == "white-box":
        return "fp32"
    return resolve_precision(precision, device)
