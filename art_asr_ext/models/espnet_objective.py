"""
An ESPnet2 ASR model's training objective per utterance, exact under padding, differentiable to the waveform.

ESPnet's ``ESPnetASRModel.forward`` returns one number for the whole batch and is not padding-exact: its conv2d
subsampling keeps one frame too many for every utterance shorter than the batch (the mask is sliced, not recomputed
from the true output length), and that frame sees padding. Here every utterance goes through the front end,
normalisation and encoder alone (as ``Speech2Text`` encodes it), and only the decoder, which masks padding exactly,
runs on the padded batch. The loss of utterance ``i`` is the term ESPnet's batch loss sums for it:

``ctc_weight * CTC_i + (1 - ctc_weight) * sum_t KL(smoothed one-hot || p_t)``, the KL term being ESPnet's
``LabelSmoothingLoss`` with ``lsm_weight`` (divided by utterance ``i``'s own number of tokens when the model has
``length_normalized_loss``). The mean over a batch equals ESPnet's loss whenever ``length_normalized_loss`` is off.

| Paper link: https://arxiv.org/abs/1804.00015
"""

import warnings
from typing import TYPE_CHECKING, List, Optional, Tuple

import torch
import torch.nn.functional as F

from art_asr_ext.models.ctc import ctc_frames_needed

if TYPE_CHECKING:
    from espnet2.asr.espnet_model import ESPnetASRModel


def unsupported_features(model: "ESPnetASRModel") -> List[str]:
    """What of an ESPnet ASR model this package cannot reproduce the objective of; empty if nothing."""
    reasons = []
    if getattr(model, "use_transducer_decoder", False):
        reasons.append("a transducer decoder")
    if getattr(model, "use_linear_decoder", False):
        reasons.append("a linear (classification) decoder")
    if getattr(model, "interctc_weight", 0.0) != 0.0:
        reasons.append(f"intermediate CTC (interctc_weight={model.interctc_weight})")
    if getattr(model, "aux_ctc", None):
        reasons.append("auxiliary CTC")
    if getattr(model, "lang_token_id", None) is not None:
        reasons.append("a language token prompt")
    if model.ctc is not None and model.ctc.ctc_type != "builtin":
        reasons.append(f"ctc_type {model.ctc.ctc_type!r} (only 'builtin' is supported)")
    return reasons


def encode(
    model: "ESPnetASRModel", speech: torch.Tensor, speech_lengths: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    ESPnet's `model.encode`, without the `FutureWarning` ESPnet 202511 raises on every call (its front end enters
    the deprecated `torch.cuda.amp.autocast(...)`), which would otherwise fill a run's log with one line per forward.

    :return: `(encoder_out, encoder_lengths)` as ESPnet returns them (the output may be a tuple).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.cuda\.amp\.autocast\(args\.\.\.\)` is deprecated", category=FutureWarning
        )
        return model.encode(speech, speech_lengths)


def encode_utterances(
    model: "ESPnetASRModel", speech: torch.Tensor, speech_lengths: torch.Tensor, scale: float = 1.0
) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Encode each utterance of a padded batch on its own and pad the encoder outputs.

    :param model: The ESPnet ASR model (its `training` flag decides SpecAugment, as in ESPnet).
    :param speech: Waveforms `(batch, samples)`, zero-padded.
    :param speech_lengths: Real lengths `(batch,)`.
    :param scale: Factor applied to the waveforms before the front end (the model's input scale).
    :return: `(encoder_out, encoder_lengths)`: `(batch, frames, dim)` zero-padded and `(batch,)`.
    """
    outputs = []
    for i in range(speech.shape[0]):
        length = speech_lengths[i : i + 1]
        utterance = speech[i : i + 1, : int(length)]
        if scale != 1.0:
            utterance = utterance * scale
        encoded, encoded_lengths = encode(model, utterance, length)
        if isinstance(encoded, tuple):
            encoded = encoded[0]
        # encoded: (1, frames, dim)
        outputs.append(encoded[0, : int(encoded_lengths[0])])
    lengths = torch.tensor([len(o) for o in outputs], dtype=torch.long, device=speech.device)
    return torch.nn.utils.rnn.pad_sequence(outputs, batch_first=True), lengths


def ctc_losses(
    model: "ESPnetASRModel", encoder_out: torch.Tensor, encoder_lengths: torch.Tensor, targets: List[List[int]]
) -> torch.Tensor:
    """
    CTC loss of each utterance, in the encoder's dtype (ESPnet casts to float32; double stays double here).

    :raises ValueError: If a target needs more CTC frames than its utterance has (ESPnet would zero its loss).
    """
    for i, tokens in enumerate(targets):
        if ctc_frames_needed(tokens) > int(encoder_lengths[i]):
            raise ValueError(
                f"Target {i} ({len(tokens)} tokens) needs {ctc_frames_needed(tokens)} CTC frames but its utterance "
                f"gives only {int(encoder_lengths[i])}; use a shorter target or a longer utterance."
            )
    hidden = F.dropout(encoder_out, p=model.ctc.dropout_rate, training=model.training)
    log_probs = model.ctc.ctc_lo(hidden).log_softmax(-1).transpose(0, 1)
    # log_probs: (frames, batch, vocab)
    device = encoder_out.device
    flat = torch.tensor([t for tokens in targets for t in tokens], dtype=torch.long, device=device)
    target_lengths = torch.tensor([len(tokens) for tokens in targets], dtype=torch.long, device=device)
    return F.ctc_loss(
        log_probs,
        flat,
        encoder_lengths,
        target_lengths,
        blank=model.blank_id,
        reduction="none",
        zero_infinity=bool(model.ctc.ctc_loss.zero_infinity),
    )


def attention_losses(
    model: "ESPnetASRModel",
    encoder_out: torch.Tensor,
    encoder_lengths: torch.Tensor,
    targets: List[List[int]],
    lsm_weight: Optional[float] = None,
) -> torch.Tensor:
    """
    Label-smoothed attention cross-entropy of each utterance (ESPnet's `LabelSmoothingLoss`, summed per utterance).

    :param lsm_weight: Label smoothing; None takes the model's own.
    """
    smoothing = model.criterion_att.smoothing if lsm_weight is None else lsm_weight
    device = encoder_out.device
    lengths = torch.tensor([len(tokens) + 1 for tokens in targets], dtype=torch.long, device=device)
    ys_in = [torch.tensor([model.sos] + tokens, dtype=torch.long) for tokens in targets]
    ys_out = [torch.tensor(tokens + [model.eos], dtype=torch.long) for tokens in targets]
    ys_in_pad = torch.nn.utils.rnn.pad_sequence(ys_in, batch_first=True, padding_value=model.eos).to(device)
    ys_out_pad = torch.nn.utils.rnn.pad_sequence(ys_out, batch_first=True, padding_value=0).to(device)
    # ys_in_pad, ys_out_pad: (batch, tokens + 1)
    logits, _ = model.decoder(encoder_out, encoder_lengths, ys_in_pad, lengths)
    log_probs = logits.log_softmax(-1)
    # log_probs: (batch, tokens + 1, vocab)
    vocab = log_probs.shape[-1]
    target_log_probs = log_probs.gather(-1, ys_out_pad.unsqueeze(-1)).squeeze(-1)
    if smoothing > 0.0:
        low, confidence = smoothing / (vocab - 1), 1.0 - smoothing
        # KL(q || p) with q = low everywhere and confidence at the target: sum q log q - sum q log p.
        entropy_term = (vocab - 1) * low * torch.log(torch.tensor(low, dtype=log_probs.dtype))
        entropy_term = entropy_term + confidence * torch.log(torch.tensor(confidence, dtype=log_probs.dtype))
        cross = low * (log_probs.sum(-1) - target_log_probs) + confidence * target_log_probs
        per_token = entropy_term.to(device) - cross
    else:
        per_token = -target_log_probs
    mask = torch.arange(per_token.shape[1], device=device)[None, :] < lengths[:, None]
    losses = (per_token * mask).sum(-1)
    if model.criterion_att.normalize_length:
        losses = losses / lengths.to(losses.dtype)
    return losses


def utterance_losses(
    model: "ESPnetASRModel",
    encoder_out: torch.Tensor,
    encoder_lengths: torch.Tensor,
    targets: List[List[int]],
    lsm_weight: Optional[float] = None,
) -> torch.Tensor:
    """
    The model's training loss of each utterance toward its token ids.

    :param model: The ESPnet ASR model.
    :param encoder_out: Encoder outputs `(batch, frames, dim)` from :func:`encode_utterances`.
    :param encoder_lengths: Their lengths `(batch,)`.
    :param targets: Token ids of each target (no `<sos/eos>`).
    :param lsm_weight: Label smoothing of the attention term; None takes the model's own.
    :return: Losses `(batch,)`, differentiable w.r.t. `encoder_out`.
    """
    weight = model.ctc_weight
    if weight == 1.0:
        return ctc_losses(model, encoder_out, encoder_lengths, targets)
    attention = attention_losses(model, encoder_out, encoder_lengths, targets, lsm_weight)
    if weight == 0.0:
        return attention
    return weight * ctc_losses(model, encoder_out, encoder_lengths, targets) + (1.0 - weight) * attention
