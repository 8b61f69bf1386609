"""
ESPnet2 ASR models: configs, building, loading from and saving to the model-zoo layout.

A model-zoo package (espnet_model_zoo, the Hugging Face ``espnet/*`` repositories) unpacks into a directory holding
``meta.yaml``, the training config ``exp/<asr_train_...>/config.yaml``, the weights ``exp/<...>/*.pth`` and the files
the config names by paths relative to that directory (the recipe's working directory): the token list (or the list
inline), the SentencePiece model (``bpemodel``) and the global normalisation statistics
(``normalize_conf.stats_file``). :func:`load_espnet_asr` resolves those paths, builds the model with
``ASRTask.build_model`` as ESPnet's ``Speech2Text`` does, and loads the weights safely (``weights_only=True``),
checking what ESPnet leaves unchecked: missing files, a token list whose size differs from the output layers, weights
that do not fit the config. :func:`save_espnet_asr` writes the same layout back.

ESPnet is imported inside the functions: ``espnet2.tasks.asr`` takes seconds to import.

| Paper link: https://arxiv.org/abs/1804.00015
"""

import argparse
import copy
import logging
import os
import pickle
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import yaml

if TYPE_CHECKING:
    from espnet2.asr.espnet_model import ESPnetASRModel

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: Where :func:`save_espnet_asr` puts each file, relative to the package root (as ESPnet's recipes lay them out).
ZOO_CONFIG = "exp/asr_train/config.yaml"
ZOO_WEIGHTS = "exp/asr_train/valid.acc.ave.pth"
ZOO_STATS = "exp/asr_stats/train/feats_stats.npz"
ZOO_BPEMODEL = "data/token_list/bpe.model"
ZOO_NLSYMS = "data/nlsyms.txt"


def librispeech_char_tokens() -> List[str]:
    """Character token list for LibriSpeech transcripts (A-Z, apostrophe, space) in ESPnet's convention."""
    return ["<blank>", "<unk>", "<space>", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "'", "<sos/eos>"]


def transformer_asr_config(
    token_list: Sequence[str],
    d_model: int = 256,
    attention_heads: int = 4,
    linear_units: int = 2048,
    encoder_blocks: int = 12,
    decoder_blocks: int = 6,
    dropout_rate: float = 0.1,
    ctc_weight: float = 0.3,
    lsm_weight: float = 0.1,
    length_normalized_loss: bool = False,
    n_mels: int = 80,
    n_fft: int = 512,
    hop_length: int = 160,
    fs: int = 16000,
    normalize: Optional[str] = "utterance_mvn",
    stats_file: Optional[PathLike] = None,
    specaug: Optional[Mapping[str, Any]] = None,
    token_type: str = "char",
    bpemodel: Optional[PathLike] = None,
    input_layer: str = "conv2d",
    init: Optional[str] = None,
) -> Dict[str, Any]:
    """
    Training config of an ESPnet2 Transformer ASR model (the layout of the LibriSpeech recipe's
    ``train_asr_transformer``: log-mel front end, conv2d subsampling, CTC + attention with label smoothing). The
    defaults give the 27 M-parameter d256, 12+6-block model; tests use e.g. ``d_model=32, encoder_blocks=2,
    decoder_blocks=1``.

    :param token_list: Output tokens (e.g. :func:`librispeech_char_tokens`).
    :param lsm_weight: Label smoothing of the attention cross-entropy (0 turns it off).
    :param ctc_weight: Weight of CTC in the training loss `ctc_weight * CTC + (1 - ctc_weight) * attention`.
    :param normalize: `utterance_mvn`, `global_mvn` (needs `stats_file`) or None.
    :param specaug: ESPnet's SpecAugment settings (`specaug_conf`, e.g. `{"num_freq_mask": 2,
                    "freq_mask_width_range": [0, 27], ...}`), which the model applies in training mode only; None:
                    no SpecAugment.
    :param input_layer: ESPnet's encoder input layer: `conv2d` (4x subsampling, 40 ms frames at a 10 ms hop) or
                        `conv2d2` (2x, 20 ms frames: enough frames per character for character CTC on fast speech).
    :param init: ESPnet's weight initialisation (`xavier_uniform`, ...), applied by `ASRTask.build_model`; None
                 keeps torch's defaults.
    :return: A config dict for :func:`build_espnet_asr`, in the form ESPnet writes to `config.yaml`.
    """
    if normalize == "global_mvn" and stats_file is None:
        raise ValueError("normalize='global_mvn' needs stats_file (an ESPnet feats_stats.npz).")
    return {
        "token_list": list(token_list),
        "token_type": token_type,
        "bpemodel": None if bpemodel is None else str(bpemodel),
        "input_size": None,
        "frontend": "default",
        "frontend_conf": {"fs": fs, "n_fft": n_fft, "hop_length": hop_length, "n_mels": n_mels},
        "specaug": None if specaug is None else "specaug",
        "specaug_conf": {} if specaug is None else dict(specaug),
        "normalize": normalize,
        "normalize_conf": {"stats_file": str(stats_file)} if normalize == "global_mvn" else {},
        "encoder": "transformer",
        "encoder_conf": {
            "output_size": d_model,
            "attention_heads": attention_heads,
            "linear_units": linear_units,
            "num_blocks": encoder_blocks,
            "dropout_rate": dropout_rate,
            "positional_dropout_rate": dropout_rate,
            "attention_dropout_rate": dropout_rate,
            "input_layer": input_layer,
            "normalize_before": True,
        },
        "decoder": "transformer",
        "decoder_conf": {
            "attention_heads": attention_heads,
            "linear_units": linear_units,
            "num_blocks": decoder_blocks,
            "dropout_rate": dropout_rate,
            "positional_dropout_rate": dropout_rate,
            "self_attention_dropout_rate": dropout_rate,
            "src_attention_dropout_rate": dropout_rate,
        },
        "ctc_conf": {"dropout_rate": 0.0, "ctc_type": "builtin"},
        "init": init,
        "model": "espnet",
        "model_conf": {
            "ctc_weight": ctc_weight,
            "lsm_weight": lsm_weight,
            "length_normalized_loss": length_normalized_loss,
        },
    }


def build_espnet_asr(config: Dict[str, Any]) -> "ESPnetASRModel":
    """
    Build an (untrained) ESPnet2 ASR model with ``ASRTask.build_model``.

    :param config: A training config as a dict (see :func:`transformer_asr_config`); keys it lacks take ESPnet's
                   command-line defaults. File paths in it must be usable as they are.
    :return: The model, in training mode as ESPnet builds it.
    """
    from espnet2.tasks.asr import ASRTask

    arguments = vars(ASRTask.get_parser().parse_args([]))
    arguments.update(copy.deepcopy(config))
    return ASRTask.build_model(argparse.Namespace(**arguments))


def sample_rate_of(config: Dict[str, Any]) -> int:
    """Sample rate of the waveforms a config's front end expects (`frontend_conf.fs`, ESPnet's default 16 kHz)."""
    fs = (config.get("frontend_conf") or {}).get("fs", 16000)
    if isinstance(fs, str):
        import humanfriendly

        fs = humanfriendly.parse_size(fs)
    return int(fs)


@dataclass
class ESPnetASRPackage:
    """An ESPnet2 ASR model with the config it was built from (file paths resolved to existing files)."""

    model: "ESPnetASRModel"
    config: Dict[str, Any]
    config_file: Optional[Path] = None
    model_file: Optional[Path] = None


def _zoo_files(model_dir: Path) -> Dict[str, Path]:
    """The config and weights of a model directory: from `meta.yaml`, else the single `config.yaml` and `.pth`."""
    meta = model_dir / "meta.yaml"
    if meta.is_file():
        try:
            with meta.open(encoding="utf-8") as f:
                content = yaml.safe_load(f) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"{meta} is not valid YAML: {error}") from error
        names = {**(content.get("yaml_files") or {}), **(content.get("files") or {})}
        missing = [key for key in ("asr_train_config", "asr_model_file") if key not in names]
        if missing:
            raise FileNotFoundError(f"{meta} does not name {missing}; it names {sorted(names)}.")
        return {key: model_dir / names[key] for key in ("asr_train_config", "asr_model_file")}
    configs = sorted(model_dir.rglob("config.yaml"))
    if len(configs) != 1:
        raise FileNotFoundError(
            f"{model_dir} has no meta.yaml and {len(configs)} config.yaml files ({[str(c) for c in configs]}); "
            f"pass asr_train_config and asr_model_file instead."
        )
    weights = sorted(configs[0].parent.glob("*.pth"))
    if len(weights) != 1:
        raise FileNotFoundError(
            f"{configs[0].parent} holds {len(weights)} .pth files ({[w.name for w in weights]}); pass asr_model_file."
        )
    return {"asr_train_config": configs[0], "asr_model_file": weights[0]}


def _resolve(value: PathLike, key: str, roots: Iterable[Path]) -> str:
    """An existing file for a config path: absolute, or relative to the first root that has it."""
    path = Path(value)
    candidates = [path] if path.is_absolute() else [root / path for root in roots]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(f"The config's {key} {str(value)!r} is missing; looked for {[str(c) for c in candidates]}.")


def resolve_config_paths(config: Dict[str, Any], roots: Sequence[Path]) -> Dict[str, Any]:
    """
    Copy of `config` whose file paths (token list, bpemodel, stats file, non-linguistic symbols) point at existing
    files, found relative to `roots` in order.

    :raises FileNotFoundError: Naming the config key and every place looked at.
    """
    config = copy.deepcopy(config)
    if isinstance(config.get("token_list"), (str, os.PathLike)):
        with open(_resolve(config["token_list"], "token_list", roots), encoding="utf-8") as f:
            config["token_list"] = [line.rstrip() for line in f]
    if config.get("token_type") == "bpe" or config.get("bpemodel"):
        if not config.get("bpemodel"):
            raise FileNotFoundError("The config has token_type 'bpe' but no bpemodel.")
        config["bpemodel"] = _resolve(config["bpemodel"], "bpemodel", roots)
    if config.get("normalize") == "global_mvn":
        stats = (config.get("normalize_conf") or {}).get("stats_file")
        if stats is None:
            raise FileNotFoundError("The config uses global_mvn but normalize_conf has no stats_file.")
        config["normalize_conf"]["stats_file"] = _resolve(stats, "normalize_conf.stats_file", roots)
    if config.get("non_linguistic_symbols"):
        config["non_linguistic_symbols"] = _resolve(config["non_linguistic_symbols"], "non_linguistic_symbols", roots)
    return config


def _check_output_sizes(state: Dict[str, torch.Tensor], token_list: List[str], model_file: Path) -> None:
    for key in ("decoder.output_layer.weight", "ctc.ctc_lo.weight"):
        if key in state and state[key].shape[0] != len(token_list):
            raise ValueError(
                f"The token list has {len(token_list)} tokens but {model_file.name}'s {key} has "
                f"{state[key].shape[0]} outputs; the config and weights come from different models."
            )


def load_espnet_asr(
    model_dir: Optional[PathLike] = None,
    asr_train_config: Optional[PathLike] = None,
    asr_model_file: Optional[PathLike] = None,
    device: Union[str, torch.device] = "cpu",
) -> ESPnetASRPackage:
    """
    Load an ESPnet2 ASR model as the model zoo lays it out.

    :param model_dir: Root of an unpacked model-zoo package (with `meta.yaml`), or a directory holding one
                      `config.yaml` and one `.pth`.
    :param asr_train_config: The training config (`config.yaml`), instead of `model_dir`.
    :param asr_model_file: The weights (`.pth`), with `asr_train_config`.
    :param device: Device to load onto.
    :return: The model in evaluation mode and its config with resolved paths.
    :raises FileNotFoundError: For a missing config, weights, token list, BPE model or statistics file.
    :raises ValueError: If the token list and output layers differ in size, or the weights miss parameters.
    """
    roots: List[Path] = []
    if model_dir is not None:
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"model_dir {str(model_dir)!r} is not a directory.")
        files = _zoo_files(model_dir)
        roots.append(model_dir)
        if asr_train_config is None:
            asr_train_config = files["asr_train_config"]
        if asr_model_file is None:
            asr_model_file = files["asr_model_file"]
    if asr_train_config is None or asr_model_file is None:
        raise ValueError("Give model_dir, or both asr_train_config (config.yaml) and asr_model_file (.pth).")
    config_file, model_file = Path(asr_train_config), Path(asr_model_file)
    for key, path in (("asr_train_config", config_file), ("asr_model_file", model_file)):
        if not path.is_file():
            raise FileNotFoundError(f"{key} {str(path)!r} does not exist.")
    try:
        with config_file.open(encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except yaml.YAMLError as error:
        raise ValueError(f"{config_file} is not valid YAML: {error}") from error
    if not isinstance(raw, dict) or "token_list" not in raw:
        raise ValueError(f"{config_file} is not an ESPnet ASR training config (no token_list).")
    # A recipe's paths are relative to its working directory: the package root, i.e. some ancestor of the config.
    roots += [config_file.parent, *config_file.parent.parents][:5]
    config = resolve_config_paths(raw, roots)

    try:
        state = torch.load(model_file, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as error:
        raise ValueError(
            f"{model_file} is not a readable torch state dict (corrupt, truncated, or holding pickled objects that "
            f"weights_only loading refuses): {error}"
        ) from error
    if isinstance(state, dict) and "module" in state and isinstance(state["module"], dict):
        state = state["module"]
    if not isinstance(state, dict):
        raise ValueError(f"{model_file} holds a {type(state).__name__}, not a state dict of parameter tensors.")
    _check_output_sizes(state, config["token_list"], model_file)
    model = build_espnet_asr(config)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise ValueError(
            f"{model_file.name} lacks {len(result.missing_keys)} parameters the config builds "
            f"(e.g. {result.missing_keys[:3]}); the config and weights come from different models."
        )
    if result.unexpected_keys:
        logger.warning(
            "Ignored %d weights the config does not use: %s", len(result.unexpected_keys), result.unexpected_keys[:3]
        )
    model.to(device).eval()
    return ESPnetASRPackage(model=model, config=config, config_file=config_file, model_file=model_file)


def feats_stats(model: "ESPnetASRModel", waveforms: Iterable[torch.Tensor]) -> Dict[str, np.ndarray]:
    """
    Global mean-variance statistics of the front-end features, as ESPnet's `collect_stats` stage writes them.

    :param model: Model whose front end computes the features.
    :param waveforms: 1-D waveforms at the model's scale.
    :return: `count`, `sum` and `sum_square` over all frames, for `np.savez` as `feats_stats.npz`.
    """
    count, total, total_square = 0, 0.0, 0.0
    with torch.no_grad():
        for waveform in waveforms:
            waveform = torch.as_tensor(waveform, dtype=torch.float32)[None, :]
            feats, _ = model.frontend(waveform, torch.tensor([waveform.shape[1]]))
            # feats: (1, frames, n_mels)
            feats = feats[0].double().numpy()
            count += feats.shape[0]
            total = total + feats.sum(0)
            total_square = total_square + (feats**2).sum(0)
    return {"count": np.array(count), "sum": np.asarray(total), "sum_square": np.asarray(total_square)}


def save_espnet_asr(model: "ESPnetASRModel", config: Dict[str, Any], directory: PathLike) -> Path:
    """
    Save a model in model-zoo layout, loadable by :func:`load_espnet_asr` and by ESPnet's `Speech2Text`
    (run from `directory`).

    :param model: The model to save.
    :param config: The config it was built from; the token list is written inline, the BPE model and statistics
                   file are copied into the package and referred to by relative paths.
    :param directory: Package root to create (may exist; files are overwritten).
    :return: `directory` as a `Path`.
    """
    root = Path(directory)
    config = copy.deepcopy(config)
    config["token_list"] = list(model.token_list)
    (root / ZOO_CONFIG).parent.mkdir(parents=True, exist_ok=True)
    if config.get("bpemodel"):
        (root / ZOO_BPEMODEL).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(config["bpemodel"], root / ZOO_BPEMODEL)
        config["bpemodel"] = ZOO_BPEMODEL
    if config.get("non_linguistic_symbols"):
        (root / ZOO_NLSYMS).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(config["non_linguistic_symbols"], root / ZOO_NLSYMS)
        config["non_linguistic_symbols"] = ZOO_NLSYMS
    if config.get("normalize") == "global_mvn":
        (root / ZOO_STATS).parent.mkdir(parents=True, exist_ok=True)
        source = (config.get("normalize_conf") or {}).get("stats_file")
        if source and Path(source).is_file():
            shutil.copyfile(source, root / ZOO_STATS)
        else:
            # Rebuild statistics that give the model's mean and std (the weights file holds them exactly anyway).
            mean = model.normalize.mean.double().cpu().numpy()
            std = model.normalize.std.double().cpu().numpy()
            np.savez(root / ZOO_STATS, count=np.array(1), sum=mean, sum_square=std**2 + mean**2)
        config["normalize_conf"]["stats_file"] = ZOO_STATS
    with (root / ZOO_CONFIG).open("w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True, sort_keys=False)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, root / ZOO_WEIGHTS)
    import espnet

    meta = {
        "espnet": str(espnet.__version__),
        "torch": str(torch.__version__),
        "timestamp": time.time(),
        "files": {"asr_model_file": ZOO_WEIGHTS},
        "yaml_files": {"asr_train_config": ZOO_CONFIG},
    }
    with (root / "meta.yaml").open("w", encoding="utf-8") as f:
        yaml.safe_dump(meta, f, sort_keys=False)
    return root
