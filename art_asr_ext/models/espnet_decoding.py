"""
Fast decoding for ESPnet2 attention encoder-decoder ASR models: batched greedy search and a vectorised beam search
that returns the hypotheses of ``espnet.nets.beam_search.BeamSearch``.

ESPnet's ``BeamSearch`` scores hypotheses one at a time, and every step of its ``TransformerDecoder`` recomputes the
keys and values of the whole prefix and of the encoder output in every layer. Here

- :class:`TransformerStepper` precomputes the source-attention keys/values of the encoder output once and caches the
  self-attention keys/values of the prefix, so a step costs one token per layer for all hypotheses at once;
- :class:`CTCPrefixScorer` computes CTC prefix scores for all hypotheses and candidate tokens without a loop over
  frames (the forward recursions are log-cumulative sums, run in float64);
- :func:`beam_search` follows ``BeamSearch.forward`` step for step: the same weights (decoder ``1 - ctc_weight``,
  CTC ``ctc_weight``, length bonus ``penalty``), pre-beam of ``int(1.5 * beam)`` tokens on the full score, per-
  hypothesis top-``beam`` and stable pruning, ``<eos>`` forced at the last step, ``end_detect`` when
  ``maxlenratio == 0``, and the retry with a smaller ``minlenratio`` when nothing ended.

| Paper link: https://arxiv.org/abs/1804.00015
"""

import functools
from typing import TYPE_CHECKING, Any, Callable, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from art_asr_ext.models.ctc import ctc_frames_needed

if TYPE_CHECKING:
    from espnet2.asr.espnet_model import ESPnetASRModel

LOGZERO = -10000000000.0


class Hypothesis(NamedTuple):
    """A finished hypothesis: token ids including the leading `<sos>` and final `<eos>`, and its total score."""

    yseq: List[int]
    score: float


# ----------------------------------------------------------------------------------------------------------------
# Decoder steppers: next-token log-probabilities for a batch of prefixes
# ----------------------------------------------------------------------------------------------------------------


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    # x: (batch, time, dim) -> (batch, heads, time, d_k)
    return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    # x: (batch, heads, time, d_k) -> (batch, time, dim)
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)


def _norm(module: torch.nn.LayerNorm) -> Callable[[torch.Tensor], torch.Tensor]:
    return functools.partial(
        F.layer_norm, normalized_shape=module.normalized_shape, weight=module.weight, bias=module.bias, eps=module.eps
    )


def _qk_norm(module: torch.nn.Module) -> Optional[torch.nn.Module]:
    return None if isinstance(module, torch.nn.Identity) else module


def fast_step_supported(decoder: torch.nn.Module) -> bool:
    """Whether :class:`TransformerStepper` reproduces `decoder` (ESPnet's Transformer decoder family)."""
    from espnet.nets.pytorch_backend.transformer.attention import MultiHeadedAttention
    from espnet.nets.pytorch_backend.transformer.decoder_layer import DecoderLayer
    from espnet.nets.pytorch_backend.transformer.layer_norm import LayerNorm

    layers = getattr(decoder, "decoders", None)
    return (
        layers is not None
        and getattr(decoder, "output_layer", None) is not None
        and isinstance(getattr(decoder, "embed", None), torch.nn.Sequential)
        and all(
            type(layer) is DecoderLayer
            and layer.sequential_attn is None
            and type(layer.self_attn) is MultiHeadedAttention
            and type(layer.src_attn) is MultiHeadedAttention
            and all(
                getattr(layer, n).dim == -1
                for n in ("norm1", "norm2", "norm3")
                if isinstance(getattr(layer, n), LayerNorm)
            )
            for layer in layers
        )
    )


class _LayerPlan(NamedTuple):
    """One decoder layer's weights, arranged for single-token steps."""

    heads: int
    norms: Tuple[Callable, Callable, Callable]
    normalize_before: bool
    qkv: Tuple[torch.Tensor, torch.Tensor]
    self_norms: Tuple[Optional[torch.nn.Module], Optional[torch.nn.Module]]
    self_out: torch.nn.Linear
    concat: Tuple[Optional[torch.nn.Linear], Optional[torch.nn.Linear]]
    src_q: torch.nn.Linear
    src_q_norm: Optional[torch.nn.Module]
    src_out: torch.nn.Linear
    memory_k: torch.Tensor
    memory_v: torch.Tensor
    feed_forward: torch.nn.Module


class TransformerStepper:
    """
    Incremental scoring with ESPnet's `TransformerDecoder` weights: source keys/values computed once, prefix
    keys/values cached, query/key/value projections fused. Mathematically `decoder.forward_one_step`; exact up to
    float rounding.
    """

    def __init__(self, decoder: torch.nn.Module, memory: torch.Tensor, memory_lengths: Optional[torch.Tensor] = None):
        """
        :param decoder: An ESPnet Transformer decoder (see :func:`fast_step_supported`), in evaluation mode.
        :param memory: Encoder outputs `(utterances, frames, dim)`.
        :param memory_lengths: Real lengths `(utterances,)` when `memory` is padded.
        """
        self.decoder = decoder
        self.plans = []
        for layer in decoder.decoders:
            own, src = layer.self_attn, layer.src_attn
            memory_k = _split_heads(src.linear_k(memory), src.h)
            if _qk_norm(src.k_norm) is not None:
                memory_k = src.k_norm(memory_k)
            weight = torch.cat([own.linear_q.weight, own.linear_k.weight, own.linear_v.weight])
            bias = torch.cat([own.linear_q.bias, own.linear_k.bias, own.linear_v.bias])
            self.plans.append(
                _LayerPlan(
                    heads=own.h,
                    norms=(_norm(layer.norm1), _norm(layer.norm2), _norm(layer.norm3)),
                    normalize_before=layer.normalize_before,
                    qkv=(weight, bias),
                    self_norms=(_qk_norm(own.q_norm), _qk_norm(own.k_norm)),
                    self_out=own.linear_out,
                    concat=(layer.concat_linear1, layer.concat_linear2) if layer.concat_after else (None, None),
                    src_q=src.linear_q,
                    src_q_norm=_qk_norm(src.q_norm),
                    src_out=src.linear_out,
                    memory_k=memory_k,
                    memory_v=_split_heads(src.linear_v(memory), src.h),
                    feed_forward=layer.feed_forward,
                )
            )
        self.attend = None
        if memory_lengths is not None and bool((memory_lengths < memory.shape[1]).any()):
            frames = torch.arange(memory.shape[1], device=memory.device)
            self.attend = (frames[None, :] < memory_lengths[:, None])[:, None, None, :]
            # attend: (utterances, 1, 1, frames), True on real frames

    def step(
        self,
        ys: torch.Tensor,
        cache: Optional[List[Tuple[torch.Tensor, torch.Tensor]]],
        rows: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, List[Tuple[torch.Tensor, torch.Tensor]]]:
        """
        :param ys: Prefixes `(hyps, length)` starting with `<sos>`.
        :param cache: Keys/values of `ys[:, :-1]` per layer (None at the first step).
        :param rows: Memory row of each prefix `(hyps,)`; None when memory has one row or one row per prefix.
        :return: Log-probabilities of the next token `(hyps, vocab)` and the cache for `ys`.
        """
        x = self.decoder.embed(ys)[:, -1:]
        # x: (hyps, 1, dim)
        attend = self.attend if self.attend is None or rows is None else self.attend[rows]
        new_cache = []
        for index, plan in enumerate(self.plans):
            norm1, norm2, norm3 = plan.norms
            residual = x
            t = norm1(x) if plan.normalize_before else x
            q, k, v = _split_heads(F.linear(t, *plan.qkv), 3 * plan.heads).chunk(3, dim=1)
            q_norm, k_norm = plan.self_norms
            if q_norm is not None:
                q = q_norm(q)
            if k_norm is not None:
                k = k_norm(k)
            if cache is not None:
                k = torch.cat([cache[index][0], k], dim=2)
                v = torch.cat([cache[index][1], v], dim=2)
            new_cache.append((k, v))
            out = plan.self_out(_merge_heads(F.scaled_dot_product_attention(q, k, v)))
            x = residual + (plan.concat[0](torch.cat([t, out], dim=-1)) if plan.concat[0] is not None else out)
            if not plan.normalize_before:
                x = norm1(x)

            residual = x
            t = norm2(x) if plan.normalize_before else x
            q = _split_heads(plan.src_q(t), plan.heads)
            if plan.src_q_norm is not None:
                q = plan.src_q_norm(q)
            mk, mv = plan.memory_k, plan.memory_v
            if rows is None and mk.shape[0] == 1 and q.shape[0] > 1:
                # All prefixes attend to one utterance: make them the query positions of one batch row.
                context = F.scaled_dot_product_attention(q.transpose(0, 2), mk, mv).transpose(0, 2)
            else:
                if rows is not None:
                    mk, mv = mk[rows], mv[rows]
                context = F.scaled_dot_product_attention(q, mk, mv, attn_mask=attend)
            out = plan.src_out(_merge_heads(context))
            x = residual + (plan.concat[1](torch.cat([t, out], dim=-1)) if plan.concat[1] is not None else out)
            if not plan.normalize_before:
                x = norm2(x)

            residual = x
            t = norm3(x) if plan.normalize_before else x
            x = residual + plan.feed_forward(t)
            if not plan.normalize_before:
                x = norm3(x)
        y = x[:, -1]
        if self.decoder.normalize_before:
            y = self.decoder.after_norm(y)
        return torch.log_softmax(self.decoder.output_layer(y), dim=-1), new_cache

    @staticmethod
    def select(cache: List[Tuple[torch.Tensor, torch.Tensor]], index: torch.Tensor):
        """Cache of the prefixes `index` picks."""
        return [(k[index], v[index]) for k, v in cache]


class ScorerStepper:
    """Fallback for other decoders: ESPnet's `BatchScorerInterface.batch_score` on one utterance."""

    def __init__(self, decoder: torch.nn.Module, memory: torch.Tensor, memory_lengths: Optional[torch.Tensor] = None):
        if memory.shape[0] != 1:
            raise ValueError(f"{type(decoder).__name__} is decoded one utterance at a time. Found: {memory.shape[0]}")
        if not hasattr(decoder, "batch_score"):
            raise ValueError(f"{type(decoder).__name__} has no batch_score; it cannot be decoded here.")
        self.decoder = decoder
        self.memory = memory

    def step(self, ys: torch.Tensor, cache: Optional[List[Any]], rows: Optional[torch.Tensor] = None):
        states = [None] * ys.shape[0] if cache is None else cache
        return self.decoder.batch_score(ys, states, self.memory.expand(ys.shape[0], -1, -1))

    @staticmethod
    def select(cache: List[Any], index: torch.Tensor):
        return [cache[i] for i in index.tolist()]


def make_stepper(decoder: torch.nn.Module, memory: torch.Tensor, memory_lengths: Optional[torch.Tensor] = None):
    """The fastest stepper that reproduces `decoder`."""
    if fast_step_supported(decoder):
        return TransformerStepper(decoder, memory, memory_lengths)
    return ScorerStepper(decoder, memory, memory_lengths)


# ----------------------------------------------------------------------------------------------------------------
# CTC prefix scores
# ----------------------------------------------------------------------------------------------------------------


class CTCPrefixScorer:
    """
    CTC prefix scores (Watanabe et al. 2017, Algorithm 2) for many hypotheses and candidate tokens of one utterance.

    The recursions `r^n_t = logaddexp(r^n_{t-1}, phi_{t-1}) + x_t` and `r^b_t = logaddexp(r^n_{t-1}, r^b_{t-1}) + b_t`
    are solved with cumulative sums and `logcumsumexp` in float64 instead of a loop over frames.
    """

    def __init__(self, log_probs: torch.Tensor, blank: int, eos: int):
        """
        :param log_probs: CTC log-posteriors `(frames, vocab)` of the utterance.
        :param blank: Blank id.
        :param eos: `<sos/eos>` id.
        """
        self.dtype = log_probs.dtype
        self.x = log_probs.double()
        self.blank, self.eos = blank, eos
        self.frames = log_probs.shape[0]

    def initial_state(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """State of `[<sos>]`: forward variables `(frames, 2, 1)` (non-blank, blank) and prefix score `(1,)`."""
        r = torch.full((self.frames, 2, 1), LOGZERO, dtype=torch.float64, device=self.x.device)
        r[:, 1, 0] = torch.cumsum(self.x[:, self.blank], 0)
        return r, torch.zeros(1, dtype=torch.float64, device=self.x.device)

    def score(
        self, ys: torch.Tensor, ids: torch.Tensor, state: Tuple[torch.Tensor, torch.Tensor]
    ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """
        :param ys: Prefixes `(hyps, length)` starting with `<sos>`.
        :param ids: Candidate next tokens `(hyps, candidates)`.
        :param state: `(r, s)` of the prefixes: `r` `(frames, 2, hyps)`, `s` `(hyps,)`.
        :return: Score increments `(hyps, candidates)` in the model dtype, and the candidates' states
                 `(r (frames, 2, hyps, candidates), log_psi (hyps, candidates))` for :meth:`select`.
        """
        r_prev, s_prev = state
        frames, output_length = self.frames, ys.shape[1] - 1
        hyps, candidates = ids.shape
        x = self.x[:, ids]
        # x: (frames, hyps, candidates)
        r_sum = torch.logaddexp(r_prev[:, 0], r_prev[:, 1])
        log_phi = r_sum[:, :, None].expand(frames, hyps, candidates)
        if output_length > 0:
            repeat = ids == ys[:, -1:]
            log_phi = torch.where(repeat[None], r_prev[:, 1, :, None], log_phi)
        # log_phi: (frames, hyps, candidates)
        start = max(output_length, 1)
        r = torch.full((frames, 2, hyps, candidates), LOGZERO, dtype=torch.float64, device=x.device)
        if start > frames - 1:
            log_psi = torch.full((hyps, candidates), LOGZERO, dtype=torch.float64, device=x.device)
            if output_length == 0 and frames > 0:
                r[0, 0] = x[0]
                log_psi = x[0].clone()
        else:
            rn0 = x[0] if output_length == 0 else torch.full_like(x[0], LOGZERO)
            rb0 = torch.full_like(rn0, LOGZERO)
            r[start - 1, 0], r[start - 1, 1] = rn0, rb0
            # r^n_t = C_t + logaddexp(rn0, logcumsumexp_{tau < t}(phi_tau - C_tau)), C_t = sum_{start <= u <= t} x_u
            c = torch.cat([torch.zeros_like(x[:1]), torch.cumsum(x[start:], 0)], 0)
            inner = torch.logcumsumexp(log_phi[start - 1 : frames - 1] - c[:-1], 0)
            rn = c[1:] + torch.logaddexp(rn0[None], inner)
            r[start:, 0] = rn
            # r^b_t = D_t + logaddexp(rb0, logcumsumexp_{tau < t}(r^n_tau - D_tau)), D_t = sum_{start <= u <= t} b_u
            b = self.x[start:, self.blank][:, None, None]
            d = torch.cat([torch.zeros_like(b[:1]), torch.cumsum(b, 0)], 0)
            rn_all = torch.cat([rn0[None], rn[:-1]], 0)
            inner = torch.logcumsumexp(rn_all - d[:-1], 0)
            r[start:, 1] = d[1:] + torch.logaddexp(rb0[None], inner)
            log_psi = torch.logsumexp(torch.cat([rn0[None], log_phi[start - 1 : frames - 1] + x[start:]], 0), 0)
        log_psi = torch.where(ids == self.eos, r_sum[-1][:, None].expand(hyps, candidates), log_psi)
        if self.eos != self.blank:
            log_psi = log_psi.masked_fill(ids == self.blank, LOGZERO)
        return (log_psi - s_prev[:, None]).to(self.dtype), (r, log_psi)

    @staticmethod
    def select(candidate_state, hyp: torch.Tensor, position: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """State of the hypotheses made of prefix `hyp[j]` and its candidate `position[j]`."""
        r, log_psi = candidate_state
        return r[:, :, hyp, position], log_psi[hyp, position]


# ----------------------------------------------------------------------------------------------------------------
# Searches
# ----------------------------------------------------------------------------------------------------------------


def _score_dtype(memory: torch.Tensor) -> torch.dtype:
    """
    The dtype hypotheses' scores add up in: the encoder output's, and at least float32. Under bf16 autocast the encoder
    output is bf16, whose 8 bits of mantissa would round a sequence's log-likelihood of about -50 to steps of 0.25.
    """
    return torch.promote_types(memory.dtype, torch.float32)


def length_bounds(frames: int, maxlenratio: float, minlenratio: float) -> Tuple[int, int]:
    """Maximum and minimum output lengths as ESPnet's `BeamSearch.forward` derives them."""
    if maxlenratio == 0:
        maxlen = frames
    elif maxlenratio < 0:
        maxlen = -1 * int(maxlenratio)
    else:
        maxlen = max(1, int(maxlenratio * frames))
    minlen = -1 * int(minlenratio) if minlenratio < 0 else int(minlenratio * frames)
    return maxlen, minlen


def _search_once(
    model: "ESPnetASRModel",
    memory: torch.Tensor,
    beam_size: int,
    ctc_weight: float,
    penalty: float,
    maxlenratio: float,
    minlenratio: float,
    pre_beam_ratio: float,
) -> List[Hypothesis]:
    from espnet.nets.e2e_asr_common import end_detect

    frames, vocab = memory.shape[0], len(model.token_list)
    sos, eos = model.sos, model.eos
    device, dtype = memory.device, _score_dtype(memory)
    maxlen, minlen = length_bounds(frames, maxlenratio, minlenratio)
    decoder_weight = 1.0 - ctc_weight
    pre_beam_size = int(pre_beam_ratio * beam_size)
    do_pre_beam = ctc_weight != 1.0 and pre_beam_size < vocab and ctc_weight != 0.0

    stepper = make_stepper(model.decoder, memory[None]) if decoder_weight != 0.0 else None
    ctc = None
    if ctc_weight != 0.0:
        ctc = CTCPrefixScorer(model.ctc.log_softmax(memory[None])[0], model.blank_id, eos)
        ctc_state = ctc.initial_state()
    ys = torch.tensor([[sos]], dtype=torch.long, device=device)
    scores = torch.zeros(1, dtype=dtype, device=device)
    cache = None
    all_ids = torch.arange(vocab, device=device)
    ended: List[Hypothesis] = []
    for i in range(maxlen):
        hyps = ys.shape[0]
        weighted = torch.zeros(hyps, vocab, dtype=dtype, device=device)
        if stepper is not None:
            log_probs, new_cache = stepper.step(ys, cache)
            weighted += decoder_weight * log_probs
        if penalty != 0.0:
            weighted += penalty * torch.ones((), dtype=dtype, device=device)
        if ctc is not None:
            ids = torch.topk(weighted, pre_beam_size, dim=1)[1] if do_pre_beam else all_ids.expand(hyps, vocab)
            ctc_scores, ctc_candidates = ctc.score(ys, ids, ctc_state)
            weighted.scatter_(1, ids, weighted.gather(1, ids) + ctc_weight * ctc_scores)
        weighted += scores[:, None]
        if do_pre_beam:
            weighted = torch.full_like(weighted, float("-inf")).scatter_(1, ids, weighted.gather(1, ids))
        top_scores, top_ids = weighted.topk(beam_size, dim=1)
        # Candidates in BeamSearch's order (hypothesis by hypothesis), then a stable sort keeps the best beam.
        flat_scores = top_scores.reshape(-1)
        order = torch.sort(flat_scores, descending=True, stable=True)[1][:beam_size]
        hyp = torch.div(order, beam_size, rounding_mode="floor")
        token = top_ids.reshape(-1)[order]
        ys = torch.cat([ys[hyp], token[:, None]], dim=1)
        scores = flat_scores[order]
        if stepper is not None:
            cache = stepper.select(new_cache, hyp)
        if ctc is not None:
            position = (ids[hyp] == token[:, None]).int().argmax(1) if do_pre_beam else token
            ctc_state = ctc.select(ctc_candidates, hyp, position)

        if i == maxlen - 1:
            ys = torch.cat([ys, torch.full_like(ys[:, :1], eos)], dim=1)
        finished = ys[:, -1] == eos
        if bool(finished.any()):
            if i >= minlen:
                for row in finished.nonzero()[:, 0].tolist():
                    ended.append(Hypothesis(ys[row].tolist(), float(scores[row])))
            keep = (~finished).nonzero()[:, 0]
            ys, scores = ys[keep], scores[keep]
            if stepper is not None:
                cache = stepper.select(cache, keep)
            if ctc is not None:
                ctc_state = (ctc_state[0][:, :, keep], ctc_state[1][keep])
        if maxlenratio == 0.0 and end_detect([h._asdict() for h in ended], i):
            break
        if ys.shape[0] == 0:
            break
    return ended


def beam_search(
    model: "ESPnetASRModel",
    memory: torch.Tensor,
    beam_size: int = 10,
    ctc_weight: float = 0.3,
    penalty: float = 0.0,
    maxlenratio: float = 0.0,
    minlenratio: float = 0.0,
    pre_beam_ratio: float = 1.5,
    normalize_length: bool = False,
) -> List[Hypothesis]:
    """
    Joint CTC/attention beam search of one utterance, with the results of ESPnet's `BeamSearch` as `Speech2Text`
    sets it up (scorers decoder, ctc, length_bonus; no language model).

    :param model: ESPnet ASR model in evaluation mode.
    :param memory: Encoder output of the utterance `(frames, dim)`, unpadded.
    :param beam_size: Hypotheses kept per step.
    :param ctc_weight: Weight of CTC prefix scores (the decoder gets `1 - ctc_weight`).
    :param penalty: Length bonus per token.
    :param maxlenratio: 0: at most `frames` tokens and end detection; < 0: `-maxlenratio` tokens; else a ratio.
    :param minlenratio: Minimum length as a ratio of `frames` (< 0: `-minlenratio` tokens).
    :param pre_beam_ratio: Pre-beam size as a multiple of `beam_size` (tokens scored by CTC).
    :param normalize_length: Rank finished hypotheses by score per token.
    :return: Finished hypotheses, best first (empty if none finished).
    """
    while True:
        ended = _search_once(model, memory, beam_size, ctc_weight, penalty, maxlenratio, minlenratio, pre_beam_ratio)
        if ended or minlenratio < 0.1:
            break
        minlenratio = max(0.0, minlenratio - 0.1)
    key = (lambda h: h.score / (len(h.yseq) - 1)) if normalize_length else (lambda h: h.score)
    return sorted(ended, key=key, reverse=True)


def _greedy(stepper, sos: int, eos: int, maxlens: List[int], device: torch.device) -> List[List[int]]:
    """Greedy search of `len(maxlens)` utterances stepped together (each prefix reads its own memory row)."""
    active = torch.arange(len(maxlens), device=device)
    ys = torch.full((len(maxlens), 1), sos, dtype=torch.long, device=device)
    outputs: List[List[int]] = [[] for _ in maxlens]
    cache = None
    while active.numel() > 0:
        log_probs, cache = stepper.step(ys, cache, rows=active)
        token = log_probs.argmax(-1)
        ys = torch.cat([ys, token[:, None]], dim=1)
        finished = (token == eos).tolist()
        for row, (utterance, value) in enumerate(zip(active.tolist(), token.tolist())):
            if not finished[row]:
                outputs[utterance].append(value)
                finished[row] = len(outputs[utterance]) >= maxlens[utterance]
        keep = torch.tensor([not f for f in finished], device=device).nonzero()[:, 0]
        active, ys = active[keep], ys[keep]
        cache = stepper.select(cache, keep)
    return outputs


def greedy_search(
    model: "ESPnetASRModel", memory: torch.Tensor, memory_lengths: torch.Tensor, maxlenratio: float = 0.0
) -> List[List[int]]:
    """
    Greedy attention decoding of a padded batch (beam 1 without CTC), all utterances stepped together.

    :param model: ESPnet ASR model in evaluation mode.
    :param memory: Encoder outputs `(utterances, frames, dim)`, zero-padded.
    :param memory_lengths: Real lengths `(utterances,)`.
    :param maxlenratio: As for :func:`beam_search` (0: at most `frames` tokens).
    :return: Token ids of each utterance, without `<sos>` and `<eos>`.
    """
    maxlens = [length_bounds(int(n), maxlenratio, 0.0)[0] for n in memory_lengths]
    if fast_step_supported(model.decoder):
        stepper = TransformerStepper(model.decoder, memory, memory_lengths)
        return _greedy(stepper, model.sos, model.eos, maxlens, memory.device)
    outputs = []
    for i, n in enumerate(memory_lengths.tolist()):
        stepper = ScorerStepper(model.decoder, memory[i : i + 1, :n])
        outputs += _greedy(stepper, model.sos, model.eos, maxlens[i : i + 1], memory.device)
    return outputs


def ctc_greedy_search(model: "ESPnetASRModel", memory: torch.Tensor, memory_lengths: torch.Tensor) -> List[List[int]]:
    """Best CTC path of each utterance, repeats merged and blank/`<sos/eos>` dropped."""
    best = model.ctc.argmax(memory)
    # best: (utterances, frames)
    outputs = []
    for row, length in zip(best.tolist(), memory_lengths.tolist()):
        tokens, previous = [], None
        for token in row[:length]:
            if token != previous and token not in (model.blank_id, model.sos, model.eos):
                tokens.append(token)
            previous = token
        outputs.append(tokens)
    return outputs


def hypothesis_tokens(hypotheses: Sequence[Hypothesis]) -> List[int]:
    """Token ids of the best hypothesis as `Speech2Text` takes them (`yseq[1:-1]`, blanks dropped)."""
    if not hypotheses:
        return []
    return [t for t in hypotheses[0].yseq[1:-1] if t != 0]


def candidate_scores(
    model: "ESPnetASRModel", memory: torch.Tensor, candidates: Sequence[List[int]]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Attention and CTC log-likelihoods of whole token sequences given one utterance, for rescoring hypotheses that
    another search proposed.

    :param model: ESPnet ASR model in evaluation mode, with CTC and decoder.
    :param memory: Encoder output of the utterance `(frames, dim)`, unpadded.
    :param candidates: Token ids of each candidate, without sos/eos.
    :return: `(attention, ctc)`, each `(len(candidates),)`: log P(tokens, eos) under the decoder, and log P(tokens)
             under CTC (-inf where the utterance has too few frames for the candidate).
    """
    from art_asr_ext.models.espnet_objective import attention_losses, ctc_losses

    frames = memory.shape[0]
    attention = torch.full((len(candidates),), float("-inf"), dtype=_score_dtype(memory))
    ctc = torch.full_like(attention, float("-inf"))
    fitting = [i for i, tokens in enumerate(candidates) if tokens and ctc_frames_needed(tokens) <= frames]
    if fitting:
        batch = memory[None].expand(len(fitting), -1, -1)
        lengths = torch.full((len(fitting),), frames, dtype=torch.long, device=memory.device)
        targets = [list(candidates[i]) for i in fitting]
        index = torch.tensor(fitting)
        attention[index] = -attention_losses(model, batch, lengths, targets, lsm_weight=0.0).to(attention.dtype).cpu()
        ctc[index] = -ctc_losses(model, batch, lengths, targets).to(ctc.dtype).cpu()
    return attention, ctc


def rescored_choice(
    attention: torch.Tensor,
    ctc: torch.Tensor,
    lm: torch.Tensor,
    words: torch.Tensor,
    ctc_weight: float,
    lm_weight: float,
    word_score: float,
) -> int:
    """
    The candidate with the best `(1 - ctc_weight) * attention + ctc_weight * ctc + lm_weight * lm + word_score *
    words`: joint CTC/attention scoring as ESPnet's beam search weighs it, plus a word language model.

    :param attention: Attention log-likelihood of each candidate (`candidate_scores`).
    :param ctc: CTC log-likelihood of each candidate.
    :param lm: Language model log10 probability of each candidate's words.
    :param words: Words in each candidate.
    :return: The chosen candidate's index.
    """
    total = (1.0 - ctc_weight) * attention + ctc_weight * ctc + lm_weight * lm + word_score * words
    return int(total.argmax())
