"""
Shared fixtures: the real LibriSpeech test-clean clips in ../shared/data and tiny DeepSpeech2 models.
"""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from art_asr_ext.data import load_librispeech

REPO = Path(__file__).resolve().parents[1]
LIBRISPEECH = Path(os.environ.get("ART_ASR_EXT_DATA", REPO.parent / "shared" / "data")) / "LibriSpeech" / "test-clean"


@pytest.fixture(scope="session")
def librispeech_utterances():
    """The three real test-clean utterances (float32 in [-1, 1], 16 kHz) with their transcripts."""
    if not LIBRISPEECH.is_dir():
        pytest.fail(f"Real test data missing: {LIBRISPEECH} (set ART_ASR_EXT_DATA to the shared data folder).")
    return load_librispeech(LIBRISPEECH)


@pytest.fixture(scope="session")
def real_clips(librispeech_utterances):
    """The real clips cropped to at most 3 s (ragged: 3 s, 3 s and the shortest full clip is cropped too)."""
    return [u.waveform[: 3 * 16000 - 4000 * i] for i, u in enumerate(librispeech_utterances)]


#: The devices an estimator or defence test runs on: the GPU only where CUDA is present (benchmarks/gpu_check.sh runs
#: the `gpu` cases on a GPU machine).
DEVICE_TYPES = ["cpu", pytest.param("gpu", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.fixture(params=DEVICE_TYPES)
def device_type(request):
    """`cpu`, and `gpu` where CUDA is present: a test taking this fixture runs once per device."""
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="module")
def single_torch_thread():
    """
    One intra-op thread for a test module of tiny models: their cost is thread synchronisation, which a second thread
    on a shared 2-core machine makes many times slower. Restored after the module.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
