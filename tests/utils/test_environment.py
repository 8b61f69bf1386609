import pytest

from art_asr_ext.utils import environment
from art_asr_ext.utils.environment import PRECISION_CHOICES, resolve_precision


@pytest.mark.parametrize("units", [True, False])
def test_auto_precision_is_bf16_only_on_a_cpu_with_bf16_matrix_units(monkeypatch, units):
    monkeypatch.setattr(environment, "cpu_has_bf16_matmul", lambda: units)
    assert resolve_precision("auto", "cpu") == ("bf16" if units else "fp32")
    assert resolve_precision("auto", "gpu") == resolve_precision("auto", "cuda") == "fp32"
    assert [resolve_precision(precision, "cpu") for precision in ("fp32", "bf16")] == ["fp32", "bf16"]


def test_an_unknown_precision_is_named():
    with pytest.raises(ValueError, match=r"precision must be one of \['auto', 'fp32', 'bf16'\]. Found: 'fp16'"):
        resolve_precision("fp16", "cpu")
    assert PRECISION_CHOICES == ("auto", "fp32", "bf16")


@pytest.mark.parametrize("units", [True, False])
def test_a_vocoder_against_a_white_box_attacker_resolves_auto_to_float32(monkeypatch, units):
    from art_asr_ext.defences.vocoder_settings import vocoder_precision

    monkeypatch.setattr(environment, "cpu_has_bf16_matmul", lambda: units)
    assert vocoder_precision("auto", "black-box", "cpu") == ("bf16" if units else "fp32")
    assert vocoder_precision("auto", "white-box", "cpu") == "fp32"
    assert vocoder_precision("bf16", "white-box", "cpu") == vocoder_precision("bf16", "black-box", "gpu") == "bf16"
    with pytest.raises(ValueError, match=r"mode must be one of \('black-box', 'white-box'\). Found: 'grey-box'"):
        vocoder_precision("auto", "grey-box", "cpu")
    with pytest.raises(ValueError, match=r"precision must be one of \['auto', 'fp32', 'bf16'\]. Found: 'fp16'"):
        vocoder_precision("fp16", "black-box", "cpu")
