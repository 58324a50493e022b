"""Input codes of a real value ``v`` in ``[low, high]`` as ``bits`` network inputs (the
inputs-as-outputs experiment; Caruana and de Sa 1996 say only "10-bit binary codes").

With ``k = floor((v - low) / (high - low) * 2**bits)`` clipped to ``[0, 2**bits - 1]`` (the
quantization level):

- ``binary``: the positional binary expansion of ``k``, most significant bit first. ``v`` is,
  up to quantization, a *linear* function of the bits (``sum_i 2**(bits - 1 - i) b_i``), so
  ``A + B`` and ``A - B`` are linear in the 20 inputs;
- ``gray``: the reflected Gray code ``k xor (k >> 1)``, most significant bit first: bit ``i`` of
  ``k`` is the parity of Gray bits ``0..i``, so reading ``v`` needs XORs (not linear);
- ``thermometer``: ``b_i = 1[v > t_i]`` at the ``bits`` equally spaced thresholds
  ``t_i = low + (i + 1) (high - low) / (bits + 1)`` (``bits + 1`` levels): ``v`` is about
  linear in the bits, but coarsely quantized;
- ``sign-magnitude``: ``b_0 = 1[v < 0]``, then the ``bits - 1``-bit binary code of ``|v|`` on
  ``[0, max(|low|, |high|)]``: ``v = (1 - 2 b_0) |v|`` is a product of inputs, not a sum;
- ``coarse``: Gaussian bumps ``b_i = exp(-(v - c_i)^2 / (2 w^2))`` at the cell centres
  ``c_i = low + (i + 0.5) (high - low) / bits``, width ``w = (high - low) / bits`` (values in
  (0, 1], smooth; the code used for the Peaks inputs).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from polytask.errors import PolytaskError

Code = Callable[[np.ndarray, float, float, int], np.ndarray]


def _level(v: np.ndarray, low: float, high: float, bits: int) -> np.ndarray:
    levels = 2**bits
    return np.clip(np.floor((np.asarray(v, dtype=float) - low) / (high - low) * levels), 0, levels - 1).astype(int)


def _bits_of(k: np.ndarray, bits: int) -> np.ndarray:
    return ((k[:, None] >> np.arange(bits - 1, -1, -1)[None, :]) & 1).astype(float)


def binary(v: np.ndarray, low: float = -5.0, high: float = 5.0, bits: int = 10) -> np.ndarray:
    return _bits_of(_level(v, low, high, bits), bits)


def gray(v: np.ndarray, low: float = -5.0, high: float = 5.0, bits: int = 10) -> np.ndarray:
    k = _level(v, low, high, bits)
    return _bits_of(k ^ (k >> 1), bits)


def thermometer(v: np.ndarray, low: float = -5.0, high: float = 5.0, bits: int = 10) -> np.ndarray:
    thresholds = low + (np.arange(bits) + 1) * (high - low) / (bits + 1)
    return (np.asarray(v, dtype=float)[:, None] > thresholds[None, :]).astype(float)


def sign_magnitude(v: np.ndarray, low: float = -5.0, high: float = 5.0, bits: int = 10) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    top = max(abs(low), abs(high))
    return np.hstack([(v < 0).astype(float)[:, None], binary(np.abs(v), 0.0, top, bits - 1)])


def coarse(v: np.ndarray, low: float = -5.0, high: float = 5.0, bits: int = 10) -> np.ndarray:
    width = (high - low) / bits
    centres = low + (np.arange(bits) + 0.5) * width
    return np.exp(-((np.asarray(v, dtype=float)[:, None] - centres[None, :]) ** 2) / (2 * width**2))


CODES: dict[str, Code] = {"binary": binary, "gray": gray, "thermometer": thermometer,
                          "sign-magnitude": sign_magnitude, "coarse": coarse}


def encode(values: np.ndarray, code: str, low: float = -5.0, high: float = 5.0, bits: int = 10) -> np.ndarray:
    """The ``(n, bits)`` code ``code`` of ``values`` (see the module docstring)."""
    if code not in CODES:
        raise PolytaskError(f"unknown input code '{code}' (choose from {', '.join(CODES)})")
    return CODES[code](values, low, high, bits)
