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
