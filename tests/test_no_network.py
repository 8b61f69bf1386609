"""
Nothing in the package opens a network connection: import, predict and a PGD step of each estimator, a defence, and
the `ci_tiny` preset, run in a fresh interpreter whose socket connections raise and are recorded.
"""

import json
import subprocess
import sys
import textwrap

from tests.conftest import LIBRISPEECH, REPO

SCRIPT = textwrap.dedent("""
    import json, socket, sys
    attempts = []
    _connect = socket.socket.connect

    def refuse(where):
        def trap(*args, **kwargs):
            target = args[1] if where == "socket.connect" and len(args) > 1 else args[:2]
            sock = args[0] if where == "socket.connect" else None
            if sock is not None and sock.family == socket.AF_UNIX:
                return _connect(*args, **kwargs)  # local IPC is not the network
            attempts.append(f"{where} {target!r}")
            raise OSError(f"network access refused by the test: {where} {target!r}")
        return trap

    socket.socket.connect = refuse("socket.connect")
    socket.socket.connect_ex = refuse("socket.connect_ex")
    socket.create_connection = refuse("socket.create_connection")
    socket.getaddrinfo = refuse("socket.getaddrinfo")

    import numpy as np
    import torch
    torch.set_num_threads(1)
    from art.attacks.evasion import ProjectedGradientDescent

    from art_asr_ext.data import load_librispeech
    from art_asr_ext.defences.preprocessor import GaussianSmoothingPyTorch
    from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2, PyTorchESPnet, PyTorchWhisper
    from art_asr_ext.models.deepspeech2 import DeepSpeech2
    from art_asr_ext.models.espnet_asr import build_espnet_asr, librispeech_char_tokens, transformer_asr_config
    from art_asr_ext.models.whisper_ctranslate2 import bundled_tiny_en_path
    from art_asr_ext.utils.audio import to_object_array

    clip = load_librispeech(sys.argv[1], max_utterances=1)[0].waveform[:16000]
    x = to_object_array([clip])
    tiny_espnet = transformer_asr_config(
        librispeech_char_tokens(), d_model=32, attention_heads=2, linear_units=64, encoder_blocks=1, decoder_blocks=1
    )
    estimators = {
        "deepspeech2": PyTorchDeepSpeech2(
            model=DeepSpeech2(hidden_size=16, hidden_layers=1),
            preprocessing_defences=GaussianSmoothingPyTorch(sigma=0.01, seed=0),
        ),
        "espnet": PyTorchESPnet(model=build_espnet_asr(tiny_espnet), asr_config=tiny_espnet, decoding="greedy"),
        "whisper": PyTorchWhisper(checkpoint=bundled_tiny_en_path()),
    }
    done = {}
    for name, estimator in estimators.items():
        estimator.predict(x)
        attack = ProjectedGradientDescent(estimator, eps=0.001, eps_step=0.0002, max_iter=1, targeted=True, verbose=False)
        attack.generate(x, y=np.array(["OPEN THE DOOR"]))
        done[name] = True

    from art_asr_ext.benchmark.cli import main
    status = main(["--preset", "ci_tiny", "--out", sys.argv[2], "--max-utterances", "1", "--threads", "1",
                   "--no-progress", "--no-plot"])
    run_attempts = list(attempts)

    # The control: a download attempt is caught by the trap, so an empty list above means nothing tried.
    import urllib.request
    try:
        urllib.request.urlopen("http://example.invalid/model.bin", timeout=1)
    except OSError:
        pass
    print("RESULT " + json.dumps({"status": status, "done": done, "attempts": run_attempts, "control": attempts}))
    """)


def test_nothing_opens_a_network_connection(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(LIBRISPEECH), str(tmp_path / "ci_tiny")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stdout[-2000:] + result.stderr[-4000:]
    outcome = json.loads(lines[-1][len("RESULT ") :])
    assert outcome["done"] == {"deepspeech2": True, "espnet": True, "whisper": True}
    assert outcome["status"] == 0 and (tmp_path / "ci_tiny" / "table1.csv").is_file()
    assert outcome["attempts"] == []
    assert len(outcome["control"]) == 1 and "example.invalid" in outcome["control"][0]
    assert "nltk_data" not in result.stderr  # ESPnet's g2p_en never tried to download


def test_the_package_imports_no_heavy_backend_for_defences_and_metrics():
    code = (
        "import sys, art_asr_ext.defences.preprocessor, art_asr_ext.metrics;"
        "from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2;"
        "print(sorted(m for m in ('espnet2', 'whisper', 'librosa', 'nltk') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
