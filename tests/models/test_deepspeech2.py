import pytest
import torch
from torch import nn

from art_asr_ext.models import DeepSpeech2
from art_asr_ext.models.deepspeech2 import BatchRNN


def packed_reference(layer: BatchRNN, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """deepspeech.pytorch's BatchRNN.forward: nn.LSTM/GRU on a PackedSequence, directions summed."""
    if layer.batch_norm is not None:
        x = layer.batch_norm(x)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    y, _ = nn.utils.rnn.pad_packed_sequence(layer.rnn(packed)[0], total_length=x.shape[0])
    if layer.bidirectional:
        y = y.view(y.shape[0], y.shape[1], 2, -1).sum(2)
    return y


@pytest.mark.parametrize("rnn_type", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_unpacked_recurrence_equals_packed_sequences(rnn_type, bidirectional):
    layer = BatchRNN(12, 8, rnn_type, bidirectional, batch_norm=True).eval().double()
    lengths = torch.tensor([9, 4, 7])
    x = torch.randn(9, 3, 12, dtype=torch.float64)
    mask = (torch.arange(9)[:, None] < lengths[None, :]).unsqueeze(-1).double()
    x = x * mask
    torch.testing.assert_close(layer(x, lengths, mask), packed_reference(layer, x, lengths))


def test_tiny_model_is_one_line_and_outputs_labels():
    model = DeepSpeech2(hidden_size=64, hidden_layers=2).eval()
    logits, lengths = model(torch.zeros(2, 16000), torch.tensor([16000, 8000]))
    assert logits.shape == (2, 51, 29)
    assert lengths.tolist() == [51, 26]
    assert model.labels[0] == "_" and model.labels[-1] == " "


def test_published_size_has_deepspeech_pytorch_parameter_names():
    names = set(DeepSpeech2(hidden_size=16, hidden_layers=2).state_dict())
    assert {
        "conv.seq_module.0.weight",
        "conv.seq_module.1.running_mean",
        "conv.seq_module.3.weight",
        "rnns.0.rnn.weight_ih_l0",
        "rnns.0.rnn.weight_hh_l0_reverse",
        "rnns.1.batch_norm.module.weight",
        "fc.0.module.0.weight",
        "fc.0.module.1.weight",
    } <= names
    assert "rnns.0.batch_norm.module.weight" not in names
    unidirectional = DeepSpeech2(hidden_size=16, hidden_layers=1, bidirectional=False, lookahead_context=5)
    assert unidirectional.state_dict()["lookahead.0.conv.weight"].shape == (16, 1, 5)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_padding_never_changes_an_utterance(bidirectional):
    model = DeepSpeech2(hidden_size=16, hidden_layers=2, bidirectional=bidirectional, lookahead_context=4).eval()
    short = 0.1 * torch.randn(5000)
    batch = torch.zeros(2, 12000)
    batch[0] = 0.1 * torch.randn(12000)
    batch[1, :5000] = short
    logits, lengths = model(batch, torch.tensor([12000, 5000]))
    alone, alone_lengths = model(short[None], torch.tensor([5000]))
    assert lengths[1] == alone_lengths[0]
    torch.testing.assert_close(logits[1, : lengths[1]], alone[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rnn_type": "transformer"}, "rnn_type"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"labels": ["_"]}, "labels"),
        ({"labels": ["_", "A", "A"]}, "labels"),
        ({"bidirectional": False, "lookahead_context": 0}, "lookahead"),
    ],
)
def test_bad_configuration_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DeepSpeech2(**kwargs)
