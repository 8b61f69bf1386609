"""
WAVEAUG: re-synthesise a training set through the vocoder once, so a recogniser can be trained on vocoded speech
(the study's ablation of the vocoder defence).

Utterances are processed in length-sorted batches and each result is cached on disk as
``<cache_dir>/<key>/<id>.<audio>.npy``, where ``key`` fingerprints the vocoder (its name, weights and statistics), the
sample rate, the seed and the generator's precision when not float32, and ``audio`` is a content hash of the input waveform; a second call reads the cache instead
of running the vocoder, and a different recording under the same id is vocoded afresh. Inside a batch, shorter utterances are zero-padded to the
longest, so their last few frames (the generator's receptive field) differ slightly from vocoding them alone; the
longest utterance of each batch is unaffected. Use `batch_size=1` for exact per-utterance results.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import re
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from art_asr_ext.defences.preprocessor.wavegan_vocoder_pytorch import WaveGANVocoderPyTorch, vocoder_fingerprint
from art_asr_ext.utils.audio import length_sorted_batches, split_numpy_batch, to_object_array, waveform_digest
from art_asr_ext.utils.audio_torch import pad_waveforms
from art_asr_ext.utils.io import atomic_save_npy

_SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def resynthesise_dataset(
    waveforms: Union[np.ndarray, Sequence[np.ndarray]],
    utterance_ids: Sequence[str],
    defence: WaveGANVocoderPyTorch,
    cache_dir: Union[str, Path],
    batch_size: int = 8,
    verbose: bool = False,
) -> List[np.ndarray]:
    """
    Vocode every utterance once (batched) and cache the results; later calls read the cache.

    :param waveforms: 1-D float waveforms at `defence.sample_rate` (list, object array or 2-D array).
    :param utterance_ids: One unique id per utterance (letters, digits, `_`, `.`, `-`), used as file name.
    :param defence: The vocoder defence whose re-synthesis is applied (its mode does not matter here).
    :param cache_dir: Root folder of the cache; created if missing.
    :param batch_size: Utterances per vocoder call.
    :param verbose: Print progress (one line per batch).
    :return: The vocoded waveforms, float32, in the order and with the lengths of `waveforms`.
    :raises ValueError: For invalid waveforms, ids that are missing, duplicated or unsafe as file names, or a bad
                        batch size.
    """
    if not isinstance(waveforms, np.ndarray):
        waveforms = to_object_array([np.asarray(w) for w in waveforms])
    items, _ = split_numpy_batch(waveforms, name="waveforms")
    ids = [str(utterance_id) for utterance_id in utterance_ids]
    if len(ids) != len(items):
        raise ValueError(f"utterance_ids holds {len(ids)} ids for {len(items)} waveforms.")
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"utterance_ids must be unique. Duplicated: {duplicates[:5]}")
    unsafe = [i for i in ids if not _SAFE_ID.match(i)]
    if unsafe:
        raise ValueError(
            f"utterance_ids must be file-name safe ([A-Za-z0-9_.-], not starting with '.'). Found: {unsafe[:5]}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Found: {batch_size}")

    folder = Path(cache_dir) / vocoder_fingerprint(defence)
    folder.mkdir(parents=True, exist_ok=True)
    results: List[Optional[np.ndarray]] = [None] * len(items)
    paths = [folder / f"{utterance_id}.{waveform_digest(item)}.npy" for utterance_id, item in zip(ids, items)]
    todo = []
    for index, path in enumerate(paths):
        if path.is_file():
            cached = np.load(path, allow_pickle=False)
            if cached.shape == items[index].shape:
                results[index] = cached
                continue
        todo.append(index)

    batches = length_sorted_batches([len(items[index]) for index in todo], batch_size)
    for number, batch in enumerate(batches):
        indices = [todo[position] for position in batch]
        tensors = [torch.from_numpy(np.ascontiguousarray(items[index], dtype=np.float32)) for index in indices]
        padded, lengths = pad_waveforms(tensors)
        with torch.no_grad():
            vocoded = defence.resynthesise(padded.to(defence.device)).cpu().numpy()
        for row, index in enumerate(indices):
            output = np.ascontiguousarray(vocoded[row, : int(lengths[row])], dtype=np.float32)
            atomic_save_npy(paths[index], output)
            results[index] = output
        if verbose:
            print(f"WAVEAUG batch {number + 1}/{len(batches)}: {len(indices)} utterances -> {folder}")
    return [result for result in results if result is not None]
