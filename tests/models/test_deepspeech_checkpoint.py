import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from art_asr_ext.models import DeepSpeech2
from art_asr_ext.models.deepspeech_checkpoint import (
    load_deepspeech_checkpoint,
    read_checkpoint_file,
    save_deepspeech_checkpoint,
)
from tests.deepspeech_pytorch_format import write_v2_package, write_v3_checkpoint

CONFIGS = [
    dict(rnn_type="lstm", hidden_size=16, hidden_layers=2, bidirectional=True),
    dict(rnn_type="gru", hidden_size=12, hidden_layers=3, bidirectional=False, lookahead_context=4),
]


def _trained_looking(model: DeepSpeech2) -> DeepSpeech2:
    """Non-trivial batch-norm statistics, so a loader that drops buffers is caught."""
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean") or name.endswith("running_var"):
            buffer.copy_(torch.rand_like(buffer) + 0.5)
    return model.eval()


def _outputs(model):
    torch.manual_seed(1)
    waveforms = 0.1 * torch.randn(2, 8000)
    return model(waveforms, torch.tensor([8000, 6100]))[0]


@pytest.mark.parametrize("config", CONFIGS)
def test_v3_lightning_checkpoint_reloads_identically(tmp_path, config):
    model = _trained_looking(DeepSpeech2(**config))
    path = tmp_path / "librispeech_pretrained_v3.ckpt"
    write_v3_checkpoint(path, model.state_dict(), model.labels, **config)
    loaded = load_deepspeech_checkpoint(path)
    assert (loaded.rnn_type, loaded.hidden_size, loaded.hidden_layers, loaded.bidirectional) == (
        config["rnn_type"],
        config["hidden_size"],
        config["hidden_layers"],
        config["bidirectional"],
    )
    assert torch.equal(_outputs(loaded), _outputs(model))


@pytest.mark.parametrize("config", CONFIGS)
def test_v2_package_reloads_identically(tmp_path, config):
    model = _trained_looking(DeepSpeech2(**config))
    path = tmp_path / "librispeech_pretrained_v2.pth"
    package_config = {k: v for k, v in config.items() if k != "lookahead_context"}
    write_v2_package(path, model.state_dict(), model.labels, **package_config)
    assert isinstance(read_checkpoint_file(path)["labels"], str)
    assert torch.equal(_outputs(load_deepspeech_checkpoint(path)), _outputs(model))


def test_v3_file_needs_neither_deepspeech_pytorch_nor_omegaconf(tmp_path):
    model = DeepSpeech2(hidden_size=8, hidden_layers=1)
    path = tmp_path / "model.ckpt"
    write_v3_checkpoint(path, model.state_dict(), model.labels, hidden_size=8, hidden_layers=1)
    code = (
        "import sys, torch\n"
        "from art_asr_ext.models.deepspeech_checkpoint import load_deepspeech_checkpoint\n"
        f"m = load_deepspeech_checkpoint({str(path)!r})\n"
        "assert m.hidden_size == 8\n"
        "bad = [n for n in sys.modules if n.split('.')[0] in ('omegaconf', 'deepspeech_pytorch', 'hydra')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_save_and_reload_our_own_checkpoint(tmp_path):
    model = _trained_looking(DeepSpeech2(**CONFIGS[1]))
    save_deepspeech_checkpoint(model, tmp_path / "ours.ckpt", extra={"model_card": {"steps": 10}})
    assert torch.equal(_outputs(load_deepspeech_checkpoint(tmp_path / "ours.ckpt")), _outputs(model))


def test_missing_checkpoint_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_deepspeech_checkpoint(tmp_path / "nope.ckpt")


def test_corrupt_checkpoint_raises(tmp_path):
    model = DeepSpeech2(hidden_size=8, hidden_layers=1)
    path = tmp_path / "model.ckpt"
    save_deepspeech_checkpoint(model, path)
    path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_deepspeech_checkpoint(path)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_code_executing_pickle_is_refused_unless_allowed(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": _Exploit()}, path)
    with pytest.raises(ValueError, match="allow_pickle=True"):
        load_deepspeech_checkpoint(path)


def test_weights_that_do_not_fit_the_declared_size_raise(tmp_path):
    model = DeepSpeech2(hidden_size=16, hidden_layers=2)
    path = tmp_path / "model.ckpt"
    write_v3_checkpoint(path, model.state_dict(), model.labels, hidden_size=32, hidden_layers=2)
    with pytest.raises(ValueError, match="do not fit"):
        load_deepspeech_checkpoint(path)


def test_file_without_state_dict_raises(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="no 'state_dict'"):
        load_deepspeech_checkpoint(path)
