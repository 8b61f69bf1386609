"""
Decoding cost and ART attack overhead of PyTorchESPnet on the LibriSpeech-sized ESPnet2 Transformer.

The model has the layout of ESPnet's LibriSpeech ``train_asr_transformer`` (d256, 4 heads, 12 encoder + 6 decoder
blocks, 2048 units, char tokens: 27 M parameters) with random weights, since nothing may be downloaded here. Decoding
cost depends on the architecture and on the number of tokens, not on the weights, so ``<eos>`` is suppressed in the
decoder's output bias and every search decodes exactly ``--tokens`` tokens (``maxlenratio = -tokens``), as the 100-token
measurement in issue 4 did. Prints, for one ``--seconds`` clip:

1. forward+backward to the waveform (``loss_gradient``);
2. ESPnet's ``BeamSearch`` and ``BatchBeamSearch`` against ours at ``--beam`` (hypotheses compared for identity);
3. greedy decodings: ESPnet ``BeamSearch`` at beam 1, our batched attention greedy search, the best CTC path;

and, on the three real clips, ART ``ProjectedGradientDescent`` (7 iterations, one batch) through the estimator against
7 x one forward+backward of the bare ESPnet model (``ESPnetASRModel.forward``, gradient to the input only) on the
padded batch, and on each clip alone (the estimator encodes utterances one by one, so it does no padded work).

Usage: ``python benchmarks/espnet_decoding.py [--threads 2] [--seconds 6.6] [--tokens 100] [--beam 10] [--repeats 1] [--no-espnet]``
"""

import argparse
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "LibriSpeech" / "test-clean"
TARGETS = ["OPEN THE DOOR", "TURN OFF THE LIGHTS", "CALL MY BROTHER NOW"]


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def espnet_search(model, beam_size, ctc_weight, batch):
    from espnet.nets.batch_beam_search import BatchBeamSearch
    from espnet.nets.beam_search import BeamSearch
    from espnet.nets.scorers.ctc import CTCPrefixScorer
    from espnet.nets.scorers.length_bonus import LengthBonus

    vocab = len(model.token_list)
    scorers = dict(decoder=model.decoder, ctc=CTCPrefixScorer(model.ctc, model.eos), length_bonus=LengthBonus(vocab))
    search = BeamSearch(
        scorers,
        dict(decoder=1.0 - ctc_weight, ctc=ctc_weight, length_bonus=0.0),
        beam_size=beam_size,
        vocab_size=vocab,
        sos=model.sos,
        eos=model.eos,
        token_list=model.token_list,
        pre_beam_score_key=None if ctc_weight == 1.0 else "full",
    )
    if batch:
        search.__class__ = BatchBeamSearch  # as Speech2Text selects it
    return search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="LibriSpeech-layout directory")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seconds", type=float, default=6.6, help="length of the decoded clip")
    parser.add_argument("--tokens", type=int, default=100, help="tokens every search decodes")
    parser.add_argument("--beam", type=int, default=10)
    parser.add_argument("--ctc-weight", type=float, default=0.3, help="CTC weight of the beam searches")
    parser.add_argument("--no-espnet", action="store_true", help="skip ESPnet's own (slow) searches")
    parser.add_argument("--repeats", type=int, default=1, help="repeats of the PGD measurement (the best is kept)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from art.attacks.evasion import ProjectedGradientDescent

    from art_asr_ext.estimators.speech_recognition.pytorch_espnet import PyTorchESPnet
    from art_asr_ext.utils.audio import to_object_array
    from art_asr_ext.models.espnet_asr import build_espnet_asr, librispeech_char_tokens, transformer_asr_config
    from art_asr_ext.models.espnet_decoding import beam_search, ctc_greedy_search, greedy_search
    from art_asr_ext.models.espnet_objective import encode_utterances

    torch.manual_seed(0)
    model = build_espnet_asr(transformer_asr_config(librispeech_char_tokens())).eval()
    with torch.no_grad():
        model.decoder.output_layer.bias[model.eos] = -1e4
    parameters = sum(p.numel() for p in model.parameters())
    estimator = PyTorchESPnet(model=model, beam_size=args.beam, decode_ctc_weight=args.ctc_weight)

    paths = sorted(Path(args.data).rglob("*.flac"))
    waveforms = [soundfile.read(str(p), dtype="float32")[0] for p in paths]
    longest = max(waveforms, key=len)
    clip = longest[: int(args.seconds * estimator.sample_rate)]
    print(
        f"ESPnet Transformer d256 12+6 ({parameters / 1e6:.1f} M parameters), {args.threads} threads, "
        f"{len(clip) / estimator.sample_rate:.1f} s clip, {args.tokens} tokens, beam {args.beam}, "
        f"ctc_weight {args.ctc_weight}"
    )

    seconds, _ = timed(lambda: estimator.loss_gradient(clip[None, :], np.array([TARGETS[0]])))
    print(f"forward+backward to the waveform: {seconds:.2f} s")

    with torch.no_grad():
        memory, memory_lengths = encode_utterances(model, torch.tensor(clip)[None], torch.tensor([len(clip)]))
        x = memory[0]
        ratio = -float(args.tokens)
        ours_time, ours = timed(lambda: beam_search(model, x, args.beam, args.ctc_weight, maxlenratio=ratio))
        print(f"ours beam {args.beam}: {ours_time:.2f} s ({args.tokens / ours_time:.0f} tokens/s)")
        reference = None
        if not args.no_espnet:
            for name, batch in (("BeamSearch", False), ("BatchBeamSearch", True)):
                search = espnet_search(model, args.beam, args.ctc_weight, batch)
                espnet_time, theirs = timed(lambda: search(x, maxlenratio=ratio))
                reference = espnet_time if reference is None else reference
                same = [h.yseq.tolist() for h in theirs] == [h.yseq for h in ours]
                print(
                    f"ESPnet {name} beam {args.beam}: {espnet_time:.2f} s ({args.tokens / espnet_time:.1f} tokens/s); "
                    f"ours is {espnet_time / ours_time:.1f}x faster; identical hypotheses: {same}"
                )
            search = espnet_search(model, 1, 0.0, False)
            beam1_time, _ = timed(lambda: search(x, maxlenratio=ratio))
            print(f"ESPnet BeamSearch beam 1 (greedy): {beam1_time:.2f} s")
        greedy_time, _ = timed(lambda: greedy_search(model, memory, memory_lengths, maxlenratio=ratio))
        speedup = (
            "" if reference is None else f"; {reference / greedy_time:.0f}x faster than BeamSearch beam {args.beam}"
        )
        print(f"ours greedy (attention): {greedy_time:.3f} s{speedup}")
        ctc_time, _ = timed(lambda: ctc_greedy_search(model, memory, memory_lengths))
        print(f"ours best CTC path: {ctc_time * 1000:.1f} ms")

    # ART PGD through the estimator against the bare model on the same batch (after one warm-up of each).
    x_batch = to_object_array(waveforms)
    y_batch = np.array(TARGETS[: len(waveforms)])
    attack = ProjectedGradientDescent(
        estimator, eps=0.001, eps_step=0.0002, max_iter=7, targeted=True, batch_size=len(waveforms), verbose=False
    )
    speech = torch.nn.utils.rnn.pad_sequence([torch.tensor(w) for w in waveforms], batch_first=True)
    speech_lengths = torch.tensor([len(w) for w in waveforms])
    tokens = [torch.tensor(estimator.tokenize(t)) for t in y_batch]
    text = torch.nn.utils.rnn.pad_sequence(tokens, batch_first=True, padding_value=-1)
    text_lengths = torch.tensor([len(t) for t in tokens])

    def bare_step():
        speech.requires_grad_(True)
        loss = model(speech, speech_lengths, text, text_lengths)[0]
        torch.autograd.grad(loss, speech)

    def bare_unpadded_step():
        for i in range(len(waveforms)):
            one = speech[i : i + 1, : int(speech_lengths[i])].detach().requires_grad_(True)
            loss = model(
                one, speech_lengths[i : i + 1], text[i : i + 1, : int(text_lengths[i])], text_lengths[i : i + 1]
            )[0]
            torch.autograd.grad(loss, one)

    bare_step()
    estimator.loss_gradient(x_batch, y_batch, batch_size=len(waveforms))
    pgd_times, bare_times, unpadded_times = [], [], []
    for _ in range(args.repeats):
        pgd_times.append(timed(lambda: attack.generate(x_batch, y=y_batch))[0])
        bare_times.append(timed(lambda: [bare_step() for _ in range(7)])[0])
        unpadded_times.append(timed(lambda: [bare_unpadded_step() for _ in range(7)])[0])
    pgd_time, bare_time, unpadded_time = min(pgd_times), min(bare_times), min(unpadded_times)
    print(
        f"ART PGD, 7 iterations, {len(waveforms)} real clips ({speech_lengths.sum().item() / 16000:.1f} s): "
        f"{pgd_time:.2f} s; bare model 7 x forward+backward of the padded batch: {bare_time:.2f} s "
        f"(overhead ratio {pgd_time / bare_time:.2f}); of each clip alone, unpadded: {unpadded_time:.2f} s "
        f"(ratio {pgd_time / unpadded_time:.2f}); best of {args.repeats}"
    )


if __name__ == "__main__":
    main()
