import numpy as np
import pytest

from art_asr_ext.defences.preprocessor import WaveGANVocoderPyTorch
from art_asr_ext.defences.preprocessor.waveaug import resynthesise_dataset, vocoder_fingerprint
from art_asr_ext.utils.audio import waveform_digest


def test_resynthesises_once_in_batches_then_reads_the_cache(tmp_path, make_tiny_hifigan, make_speech, monkeypatch):
    defence = WaveGANVocoderPyTorch(vocoder=make_tiny_hifigan(), device_type="cpu")
    waveforms = [make_speech(n, seed=i) for i, n in enumerate([300, 450, 449, 200])]
    ids = ["utt-a", "utt-b", "utt-c", "utt.d"]
    calls = []
    original = defence.resynthesise
    monkeypatch.setattr(defence, "resynthesise", lambda x: calls.append(tuple(x.shape)) or original(x))

    vocoded = resynthesise_dataset(waveforms, ids, defence, tmp_path, batch_size=2)
    assert calls == [(2, 450), (2, 300)]  # length-sorted batches
    assert [len(v) for v in vocoded] == [300, 450, 449, 200]
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in vocoded)
    for index in (1, 0):  # the longest utterance of each batch is not padded: exactly its solo re-synthesis
        solo = defence(np.stack([waveforms[index]]))[0][0]
        np.testing.assert_allclose(vocoded[index], solo, atol=1e-6)
    folder = tmp_path / vocoder_fingerprint(defence)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{i}.{waveform_digest(w)}.npy" for i, w in zip(ids, waveforms)
    )

    calls.clear()
    again = resynthesise_dataset(waveforms, ids, defence, tmp_path, batch_size=2)
    assert calls == []
    assert all(np.array_equal(a, b) for a, b in zip(vocoded, again))


def test_a_different_recording_under_the_same_id_is_vocoded_afresh(tmp_path, make_tiny_hifigan, make_speech):
    defence = WaveGANVocoderPyTorch(vocoder=make_tiny_hifigan(), device_type="cpu")
    first = resynthesise_dataset([make_speech(300, seed=0)], ["utt-a"], defence, tmp_path)[0]
    swapped = make_speech(300, seed=1)  # same id, same length, other samples
    second = resynthesise_dataset([swapped], ["utt-a"], defence, tmp_path)[0]
    np.testing.assert_allclose(second, defence(np.stack([swapped]))[0][0], atol=1e-6)
    assert not np.allclose(first, second)
    again = resynthesise_dataset([make_speech(300, seed=0)], ["utt-a"], defence, tmp_path)[0]
    assert np.array_equal(again, first)  # each recording keeps its own cache entry


def test_cache_key_follows_the_vocoder(make_tiny_hifigan, make_tiny_pwg):
    base = vocoder_fingerprint(WaveGANVocoderPyTorch(vocoder=make_tiny_hifigan(seed=0), device_type="cpu"))
    assert base == vocoder_fingerprint(WaveGANVocoderPyTorch(vocoder=make_tiny_hifigan(seed=0), device_type="cpu"))
    assert base != vocoder_fingerprint(WaveGANVocoderPyTorch(vocoder=make_tiny_hifigan(seed=1), device_type="cpu"))
    pwg = make_tiny_pwg()
    seeded = [vocoder_fingerprint(WaveGANVocoderPyTorch(vocoder=pwg, seed=s, device_type="cpu")) for s in (0, 1)]
    assert seeded[0] != seeded[1]


@pytest.mark.parametrize(
    "ids, message",
    [
        (["a"], "holds 1 ids for 2 waveforms"),
        (["a", "a"], r"unique. Duplicated: \['a'\]"),
        (["a", "../b"], "file-name safe"),
    ],
)
def test_bad_utterance_ids_raise(tmp_path, make_tiny_hifigan, make_speech, ids, message):
    defence = WaveGANVocoderPyTorch(vocoder=make_tiny_hifigan(), device_type="cpu")
    with pytest.raises(ValueError, match=message):
        resynthesise_dataset([make_speech(100), make_speech(120)], ids, defence, tmp_path)


def test_bad_waveform_raises(tmp_path, make_tiny_hifigan):
    defence = WaveGANVocoderPyTorch(vocoder=make_tiny_hifigan(), device_type="cpu")
    with pytest.raises(ValueError, match=r"waveforms\[0\] contains NaN"):
        resynthesise_dataset([np.array([np.nan] * 100, np.float32)], ["a"], defence, tmp_path)
