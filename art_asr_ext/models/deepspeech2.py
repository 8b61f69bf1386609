"""
DeepSpeech2 as a pure torch module, differentiable from the raw waveform.

The layer layout and parameter names follow deepspeech.pytorch (two Conv2d+BatchNorm+Hardtanh blocks, stacked
recurrent layers with sequence-wise BatchNorm, a lookahead convolution for unidirectional models and a final
BatchNorm+Linear over the labels, blank at index 0), so its checkpoints load without renaming. Unlike the original,
the recurrent layers run on zero-padded batches without packing: each direction is a causal recurrence over the
padded batch, the backward direction reads every utterance reversed within its own length. This is exact (padding
never reaches a real frame) and avoids the quadratic ``slice_backward`` cost of packed sequences in torch's CPU
RNN backward, which otherwise makes batched attacks slower than attacking one utterance at a time.

| Paper link: https://arxiv.org/abs/1512.02595
"""

import math
from typing import List, Sequence, Tuple

import torch
from torch import nn

from art_asr_ext.features.spectrogram import DeepSpeechSpectrogram, time_mask

#: deepspeech.pytorch's ``labels.json``: blank, apostrophe, A-Z, space.
DEFAULT_LABELS: Tuple[str, ...] = ("_", "'", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", " ")

RNN_TYPES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
# torch's functional recurrent kernels; they take the flat weight list of one direction of one layer.
_RNN_KERNELS = {"lstm": torch.lstm, "gru": torch.gru, "rnn": torch.rnn_tanh}


class SequenceWise(nn.Module):
    """Applies a module to every frame of a `(time, batch, features)` tensor."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time, batch = x.shape[0], x.shape[1]
        return self.module(x.reshape(time * batch, -1)).view(time, batch, -1)


class MaskConv(nn.Module):
    """Runs the convolution stack, zeroing every output frame beyond an utterance's length after each layer."""

    def __init__(self, seq_module: nn.Sequential) -> None:
        super().__init__()
        self.seq_module = seq_module

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """
        :param x: Features `(batch, channels, freq, time)`.
        :param lengths: Output lengths in frames, `(batch,)`.
        """
        for module in self.seq_module:
            x = module(x)
            x = x * time_mask(lengths, x.shape[-1])[:, None, None, :].to(x.dtype)
        return x


def reversal_index(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """
    Flat row indices into a `(time * batch, features)` view that reverse each utterance within its own length and
    leave padded frames where they are. The permutation is its own inverse.

    :param lengths: Real lengths `(batch,)`.
    :param max_length: Padded length.
    :return: Indices of shape `(time * batch,)`.
    """
    batch = lengths.shape[0]
    steps = torch.arange(max_length, device=lengths.device)[:, None]
    reversed_steps = torch.where(steps < lengths[None, :], lengths[None, :] - 1 - steps, steps)
    return (reversed_steps * batch + torch.arange(batch, device=lengths.device)[None, :]).reshape(-1)


class BatchRNN(nn.Module):
    """
    One recurrent layer, optionally preceded by sequence-wise BatchNorm; the two directions are summed.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        rnn_type: str = "lstm",
        bidirectional: bool = True,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.rnn_type = rnn_type
        self.bidirectional = bidirectional
        self.batch_norm = SequenceWise(nn.BatchNorm1d(input_size)) if batch_norm else None
        # The nn module only holds the parameters (names as in deepspeech.pytorch); forward calls the kernels.
        self.rnn = RNN_TYPES[rnn_type](input_size=input_size, hidden_size=hidden_size, bidirectional=bidirectional)

    def _run_direction(self, x: torch.Tensor, suffix: str) -> torch.Tensor:
        weights = [
            getattr(self.rnn, name + suffix) for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
        ]
        hidden = x.new_zeros(1, x.shape[1], self.rnn.hidden_size)
        state = (hidden, hidden) if self.rnn_type == "lstm" else hidden
        # cuDNN only differentiates RNNs run in training mode; without dropout that mode changes no value.
        train = self.training or (x.is_cuda and torch.is_grad_enabled())
        # Arguments: input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first.
        return _RNN_KERNELS[self.rnn_type](x, state, weights, True, 1, 0.0, train, False, False)[0]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """
        :param x: `(time, batch, features)`, zero beyond each length.
        :param lengths: Real lengths `(batch,)`.
        :param mask: `(time, batch, 1)` float mask of real frames.
        :return: `(time, batch, hidden)`, zero beyond each length.
        """
        if self.batch_norm is not None:
            x = self.batch_norm(x)
        # A forward recurrence is causal: frames beyond the length never influence real frames.
        output = self._run_direction(x, "")
        if self.bidirectional:
            time, batch = x.shape[0], x.shape[1]
            index = reversal_index(lengths, time)
            x_reversed = x.reshape(time * batch, -1).index_select(0, index).view(time, batch, -1)
            backward = self._run_direction(x_reversed, "_reverse")
            output = output + backward.reshape(time * batch, -1).index_select(0, index).view(time, batch, -1)
        return output * mask


class Lookahead(nn.Module):
    """
    Row convolution over `context` future frames (Wang et al. 2016), for unidirectional models.

    | Paper link: https://arxiv.org/abs/1512.02595
    """

    def __init__(self, n_features: int, context: int) -> None:
        super().__init__()
        if context < 1:
            raise ValueError(f"lookahead context must be >= 1. Found: {context}")
        self.context = context
        self.conv = nn.Conv1d(n_features, n_features, kernel_size=context, groups=n_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (time, batch, features) -> (batch, features, time) padded on the right with context - 1 zero frames
        y = nn.functional.pad(x.permute(1, 2, 0), (0, self.context - 1))
        return self.conv(y).permute(2, 0, 1)


class DeepSpeech2(nn.Module):
    """
    DeepSpeech2 (CTC over characters) with a differentiable spectrogram front end.

    ``forward(waveforms, lengths)`` returns unnormalised logits `(batch, frames, labels)` and the frame lengths.

    | Paper link: https://arxiv.org/abs/1512.02595
    """

    def __init__(
        self,
        labels: Sequence[str] = DEFAULT_LABELS,
        rnn_type: str = "lstm",
        hidden_size: int = 1024,
        hidden_layers: int = 5,
        bidirectional: bool = True,
        lookahead_context: int = 20,
        sample_rate: int = 16000,
        window_size: float = 0.02,
        window_stride: float = 0.01,
        window: str = "hamming",
    ) -> None:
        """
        :param labels: Output alphabet; index 0 is the CTC blank.
        :param rnn_type: `lstm`, `gru` or `rnn`.
        :param hidden_size: Width of every recurrent layer.
        :param hidden_layers: Number of recurrent layers.
        :param bidirectional: Bidirectional recurrences (summed), else unidirectional with a lookahead convolution.
        :param lookahead_context: Future frames seen by the lookahead convolution (unidirectional only).
        :param sample_rate: Expected sample rate of the input waveforms.
        :param window_size: Spectrogram window in seconds.
        :param window_stride: Spectrogram hop in seconds.
        :param window: Spectrogram window function.
        """
        super().__init__()
        if rnn_type not in RNN_TYPES:
            raise ValueError(f"rnn_type must be one of {sorted(RNN_TYPES)}. Found: {rnn_type!r}")
        if hidden_size < 1 or hidden_layers < 1:
            raise ValueError(f"hidden_size and hidden_layers must be >= 1. Found: {hidden_size}, {hidden_layers}")
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"labels must hold at least two distinct symbols (blank first). Found: {labels!r}")
        self.labels: List[str] = list(labels)
        self.rnn_type = rnn_type
        self.hidden_size = hidden_size
        self.hidden_layers = hidden_layers
        self.bidirectional = bidirectional
        self.lookahead_context = lookahead_context
        self.spectrogram = DeepSpeechSpectrogram(sample_rate, window_size, window_stride, window)

        self.conv = MaskConv(
            nn.Sequential(
                nn.Conv2d(1, 32, kernel_size=(41, 11), stride=(2, 2), padding=(20, 5)),
                nn.BatchNorm2d(32),
                nn.Hardtanh(0, 20),
                nn.Conv2d(32, 32, kernel_size=(21, 11), stride=(2, 1), padding=(10, 5)),
                nn.BatchNorm2d(32),
                nn.Hardtanh(0, 20),
            )
        )
        rnn_input_size = self.spectrogram.n_bins
        rnn_input_size = math.floor((rnn_input_size + 2 * 20 - 41) / 2 + 1)
        rnn_input_size = math.floor((rnn_input_size + 2 * 10 - 21) / 2 + 1)
        rnn_input_size *= 32
        self.rnns = nn.Sequential(
            BatchRNN(rnn_input_size, hidden_size, rnn_type, bidirectional, batch_norm=False),
            *(BatchRNN(hidden_size, hidden_size, rnn_type, bidirectional) for _ in range(hidden_layers - 1)),
        )
        self.lookahead = (
            None if bidirectional else nn.Sequential(Lookahead(hidden_size, lookahead_context), nn.Hardtanh(0, 20))
        )
        self.fc = nn.Sequential(
            SequenceWise(
                nn.Sequential(nn.BatchNorm1d(hidden_size), nn.Linear(hidden_size, len(self.labels), bias=False))
            )
        )

    @property
    def sample_rate(self) -> int:
        """Sample rate the model expects, in Hz."""
        return self.spectrogram.sample_rate

    def output_lengths(self, frame_lengths: torch.Tensor) -> torch.Tensor:
        """
        :param frame_lengths: Spectrogram lengths `(batch,)`.
        :return: Lengths after the convolutions' time strides, `(batch,)`.
        """
        lengths = frame_lengths
        for module in self.conv.seq_module:
            if isinstance(module, nn.Conv2d):
                kernel, stride, padding, dilation = (
                    module.kernel_size[1],
                    module.stride[1],
                    module.padding[1],
                    module.dilation[1],
                )
                lengths = torch.div(lengths + 2 * padding - dilation * (kernel - 1) - 1, stride, rounding_mode="floor")
                lengths = lengths + 1
        return lengths

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        :param waveforms: Zero-padded float waveforms in [-1, 1], `(batch, samples)`.
        :param lengths: Real lengths in samples, `(batch,)`.
        :return: Logits `(batch, frames, labels)` and output lengths `(batch,)`.
        """
        features, frame_lengths = self.spectrogram(waveforms, lengths)
        # features: (batch, freq, frames)
        output_lengths = self.output_lengths(frame_lengths)
        x = self.conv(features.unsqueeze(1), output_lengths)
        # x: (batch, channels, freq, time) -> (time, batch, channels * freq)
        batch, channels, freq, time = x.shape
        x = x.reshape(batch, channels * freq, time).permute(2, 0, 1).contiguous()
        mask = time_mask(output_lengths, time).t().unsqueeze(-1).to(x.dtype)
        for rnn in self.rnns:
            x = rnn(x, output_lengths, mask)
        if self.lookahead is not None:
            x = self.lookahead(x) * mask
        logits = self.fc(x)
        return logits.transpose(0, 1), output_lengths
