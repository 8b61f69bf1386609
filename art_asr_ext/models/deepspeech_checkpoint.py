"""
Load and save deepspeech.pytorch checkpoints without the ``deepspeech_pytorch`` package.

Two formats are read:

* **v3** PyTorch-Lightning ``.ckpt``: ``{"state_dict": ..., "hyper_parameters": {"labels", "model_cfg",
  "spect_cfg", ...}}``, where the configs are pickled OmegaConf ``DictConfig`` objects whose metadata names
  deepspeech.pytorch's own dataclasses and enums (``BiDirectionalConfig``, ``RNNType.lstm``...).
* **v2** ``.pth`` packages: ``{"hidden_size", "hidden_layers", "rnn_type", "audio_conf", "labels", "state_dict",
  "bidirectional", ...}``.

Files are read with ``torch.load(weights_only=True)``: the OmegaConf and deepspeech.pytorch names a v3 file refers
to are mapped onto inert stand-in records (nothing from the file is executed, and neither package is imported), which
are then turned into plain values. ``allow_pickle=True`` falls back to a full unpickle for files the safe loader
refuses; use it only for files you trust.

| Paper link: https://arxiv.org/abs/1512.02595
"""

import collections
import operator
import os
import pickle
import zipfile
from typing import Any, Dict, Mapping, Optional, Union

import torch

from art_asr_ext.models.deepspeech2 import RNN_TYPES, DeepSpeech2

PathLike = Union[str, os.PathLike]


class _PickledRecord:
    """Inert stand-in for a pickled object of a class this module does not import: keeps its state, runs nothing."""

    pickled_name = "?"

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __class_getitem__(cls, item: Any) -> type:
        # ``typing.Tuple[Any, ...]`` is pickled as ``operator.getitem(Tuple, (Any, Ellipsis))``.
        return cls

    def __repr__(self) -> str:
        return f"<pickled {self.pickled_name}>"


class _EnumValue:
    """Stand-in for a member of a deepspeech.pytorch enum: `RNNType(nn.LSTM)` or `SpectrogramWindow('hamming')`."""

    def __init__(self, enum_name: str, value: Any) -> None:
        self.enum_name = enum_name
        self.name = value.pickled_name.rsplit(".", 1)[-1].lower() if isinstance(value, type) else str(value)


def _record_class(name: str) -> type:
    return type(name.rsplit(".", 1)[-1], (_PickledRecord,), {"pickled_name": name})


def _enum_constructor(name: str):
    def construct(value: Any) -> _EnumValue:
        return _EnumValue(name, value)

    construct.__qualname__ = construct.__name__ = name.rsplit(".", 1)[-1]
    return construct


_RECORD_NAMES = [
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.listconfig.ListConfig",
    "omegaconf.base.ContainerMetadata",
    "omegaconf.base.Metadata",
    "omegaconf.nodes.AnyNode",
    "omegaconf.nodes.EnumNode",
    "omegaconf.nodes.IntegerNode",
    "omegaconf.nodes.FloatNode",
    "omegaconf.nodes.StringNode",
    "omegaconf.nodes.BooleanNode",
    "omegaconf.nodes.BytesNode",
    "omegaconf.nodes.PathNode",
    "omegaconf.nodes.ValueNode",
    "typing.Any",
    "typing.Tuple",
    "typing.List",
    "typing.Dict",
    "typing.Optional",
    "typing.Union",
    "torch.nn.modules.rnn.LSTM",
    "torch.nn.modules.rnn.GRU",
    "torch.nn.modules.rnn.RNN",
    "pathlib.PosixPath",
] + [
    f"deepspeech_pytorch.configs.{module}.{name}"
    for module, names in {
        "train_config": [
            "SpectConfig",
            "AugmentationConfig",
            "DataConfig",
            "BiDirectionalConfig",
            "UniDirectionalConfig",
            "OptimConfig",
            "SGDConfig",
            "AdamConfig",
            "DeepSpeechTrainerConf",
            "DeepSpeechConfig",
        ],
        "lightning_config": ["TrainerConf", "ModelCheckpointConf"],
        "inference_config": ["LMConfig", "ModelConfig", "InferenceConfig", "TranscribeConfig", "EvalConfig"],
    }.items()
    for name in names
]
_ENUM_NAMES = [
    "deepspeech_pytorch.enums.RNNType",
    "deepspeech_pytorch.enums.SpectrogramWindow",
    "deepspeech_pytorch.enums.DecoderType",
]
_BUILTINS = {
    f"{module}.{name}": getattr(__import__("builtins"), name)
    for module in ("__builtin__", "builtins")
    for name in ("float", "int", "str", "bool", "bytes", "list", "dict", "tuple", "set", "Ellipsis")
}
_BUILTINS.update(
    {
        "__builtin__.unicode": str,
        "__builtin__.long": int,
        "_operator.getitem": operator.getitem,
        "collections.defaultdict": collections.defaultdict,
    }
)

_SAFE_GLOBALS = (
    [(_record_class(name), name) for name in _RECORD_NAMES]
    + [(_enum_constructor(name), name) for name in _ENUM_NAMES]
    + [(value, name) for name, value in _BUILTINS.items()]
)


def _plain(value: Any) -> Any:
    """Turn stand-in OmegaConf containers and nodes into plain dicts, lists and values."""
    if isinstance(value, _EnumValue):
        return value.name
    if isinstance(value, _PickledRecord):
        state = value.state[0] if isinstance(value.state, tuple) else value.state
        if not isinstance(state, dict):
            return value
        if value.pickled_name == "omegaconf.dictconfig.DictConfig":
            content = state.get("_content")
            return None if content is None else {key: _plain(item) for key, item in content.items()}
        if value.pickled_name == "omegaconf.listconfig.ListConfig":
            content = state.get("_content")
            return None if content is None else [_plain(item) for item in content]
        if "_val" in state:
            return _plain(state["_val"])
        return value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value


def _config_type(value: Any) -> Optional[str]:
    """Class name of the structured config behind a pickled DictConfig (e.g. `BiDirectionalConfig`)."""
    if isinstance(value, _PickledRecord) and isinstance(value.state, dict):
        metadata = value.state.get("_metadata")
        if isinstance(metadata, _PickledRecord) and isinstance(metadata.state, dict):
            object_type = metadata.state.get("object_type")
            if isinstance(object_type, type) and issubclass(object_type, _PickledRecord):
                return object_type.pickled_name.rsplit(".", 1)[-1]
    return None


def read_checkpoint_file(path: PathLike, allow_pickle: bool = False) -> Dict[str, Any]:
    """
    Read a deepspeech.pytorch checkpoint into a dict, safely.

    :param path: `.ckpt` or `.pth` file.
    :param allow_pickle: Fall back to a full, code-executing unpickle if the safe loader refuses the file.
    :return: The checkpoint dict (v3 configs still as stand-in records; see `deepspeech_config`).
    :raises FileNotFoundError: If the file does not exist.
    :raises ValueError: If the file is not a readable checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"DeepSpeech checkpoint not found: {path!r}")
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not allow_pickle:
            reason = str(error).split("WeightsUnpickler error:")[-1].split(". Please")[0].strip()
            raise ValueError(
                f"{path!r} holds objects the safe loader does not accept ({reason}). If you trust the file, pass "
                f"allow_pickle=True to unpickle it fully (this can execute code from the file)."
            ) from error
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"{path!r} is not a readable torch checkpoint (corrupt or truncated?): {error}") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{path!r} is not a deepspeech.pytorch checkpoint: it has no 'state_dict'.")
    return checkpoint


def deepspeech_config(checkpoint: Mapping[str, Any]) -> Dict[str, Any]:
    """
    The constructor arguments of :class:`DeepSpeech2` described by a v3 or v2 checkpoint.

    :param checkpoint: A checkpoint dict as read by `read_checkpoint_file`.
    :return: Keyword arguments for `DeepSpeech2`.
    :raises ValueError: If the checkpoint lacks an entry the configuration needs (the entry is named).
    """
    try:
        return _deepspeech_config(checkpoint)
    except KeyError as error:
        raise ValueError(f"Checkpoint lacks the entry {error.args[0]!r} that its model configuration needs.") from error


def _deepspeech_config(checkpoint: Mapping[str, Any]) -> Dict[str, Any]:
    if "hyper_parameters" in checkpoint:  # v3, PyTorch Lightning
        hyper = checkpoint["hyper_parameters"]
        model_cfg, spect_cfg = hyper.get("model_cfg"), hyper.get("spect_cfg")
        config_type = _config_type(model_cfg)
        model, spect, labels = _plain(model_cfg), _plain(spect_cfg), _plain(hyper.get("labels"))
        if not isinstance(model, dict) or not isinstance(spect, dict) or labels is None:
            raise ValueError("v3 checkpoint lacks hyper_parameters model_cfg / spect_cfg / labels.")
        # deepspeech.pytorch decides the direction by the config class; a plain dict has lookahead only if uni.
        bidirectional = config_type != "UniDirectionalConfig" if config_type else "lookahead_context" not in model
        config = {
            "labels": list(labels),
            "rnn_type": model.get("rnn_type", "lstm"),
            "hidden_size": int(model["hidden_size"]),
            "hidden_layers": int(model["hidden_layers"]),
            "bidirectional": bidirectional,
            "lookahead_context": int(model.get("lookahead_context", 20)),
        }
    elif "hidden_size" in checkpoint:  # v2 package
        spect = _plain(checkpoint.get("audio_conf", {})) or {}
        rnn_type = checkpoint.get("rnn_type", "lstm")
        config = {
            "labels": list(checkpoint["labels"]),
            "rnn_type": str(rnn_type).lower(),
            "hidden_size": int(checkpoint["hidden_size"]),
            "hidden_layers": int(checkpoint["hidden_layers"]),
            "bidirectional": bool(checkpoint.get("bidirectional", True)),
        }
    else:
        raise ValueError("Checkpoint is neither a v3 Lightning checkpoint (hyper_parameters) nor a v2 package.")
    if config["rnn_type"] not in RNN_TYPES:
        raise ValueError(
            f"Unsupported rnn_type {config['rnn_type']!r} in checkpoint; expected one of {sorted(RNN_TYPES)}."
        )
    config.update(
        sample_rate=int(spect.get("sample_rate", 16000)),
        window_size=float(spect.get("window_size", 0.02)),
        window_stride=float(spect.get("window_stride", 0.01)),
        window=str(spect.get("window", "hamming")),
    )
    return config


def _strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Remove wrappers' prefixes (DataParallel's `module.`, a Lightning wrapper's `model.`)."""
    result = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "model."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        result[key] = value
    return result


def load_deepspeech_checkpoint(path: PathLike, allow_pickle: bool = False) -> DeepSpeech2:
    """
    Build a :class:`DeepSpeech2` from a deepspeech.pytorch checkpoint (v3 `.ckpt` or v2 `.pth`), in eval mode.

    :param path: Checkpoint file.
    :param allow_pickle: See `read_checkpoint_file`.
    :return: The model with the checkpoint's weights.
    :raises FileNotFoundError: If the file does not exist.
    :raises ValueError: If the file is corrupt, of an unknown format, or its weights do not fit its configuration.
    """
    checkpoint = read_checkpoint_file(path, allow_pickle=allow_pickle)
    config = deepspeech_config(checkpoint)
    state_dict = _strip_prefixes(checkpoint["state_dict"])
    lookahead = state_dict.get("lookahead.0.conv.weight")
    if lookahead is not None:
        # v2 packages do not record the lookahead context; the kernel width is the context.
        config["lookahead_context"] = int(lookahead.shape[-1])
    model = DeepSpeech2(**config)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise ValueError(f"Weights in {os.fspath(path)!r} do not fit the configuration it declares: {error}") from error
    return model.eval()


def save_deepspeech_checkpoint(model: DeepSpeech2, path: PathLike, extra: Optional[Dict[str, Any]] = None) -> None:
    """
    Save a model as a deepspeech.pytorch v3 checkpoint with plain (non-OmegaConf) hyper-parameters, loadable by
    `load_deepspeech_checkpoint` with `weights_only=True`.

    :param model: The model.
    :param path: Output `.ckpt` path.
    :param extra: Further top-level entries (e.g. training metadata); plain Python values only.
    """
    spect = model.spectrogram
    model_cfg = {"rnn_type": model.rnn_type, "hidden_size": model.hidden_size, "hidden_layers": model.hidden_layers}
    if not model.bidirectional:
        model_cfg["lookahead_context"] = model.lookahead_context
    checkpoint = {
        "pytorch-lightning_version": "1.1.5",
        "state_dict": model.state_dict(),
        "hparams_name": "kwargs",
        "hyper_parameters": {
            "labels": list(model.labels),
            "model_cfg": model_cfg,
            "precision": 32,
            "spect_cfg": {
                "sample_rate": spect.sample_rate,
                "window_size": spect.window_size,
                "window_stride": spect.window_stride,
                "window": spect.window_name,
            },
        },
    }
    checkpoint.update(extra or {})
    torch.save(checkpoint, os.fspath(path))
