"""Choosing the torch device: ``auto`` means CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device for a user's choice.

    Parameters
    ----------
    name : str or torch.device
        ``"auto"`` (the best available), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"cpu"``.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If the named device is unknown or not available on this machine.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available (use --device auto or cpu)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but Apple MPS is not available (use --device auto or cpu)")
    return device
