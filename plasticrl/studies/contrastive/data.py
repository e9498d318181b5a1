"""sklearn's digits (8x8 images, 10 classes, ships with scikit-learn) with a fixed 80/20 split."""
from __future__ import annotations

from typing import NamedTuple

import torch

from plasticrl.errors import PlasticRLError

DEFAULT_SPLIT_SEED = 0


class DigitsSplit(NamedTuple):
    """Pixels scaled to [0, 1] (``[N, 64]`` float32) and integer labels (``[N]`` long)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_split(seed: int = DEFAULT_SPLIT_SEED, test_fraction: float = 0.2) -> DigitsSplit:
    """Load digits and split it with a seeded, class-stratified permutation (no download).

    The split is a function of ``seed`` alone, so every model in a comparison sees the same
    1437 training and 360 test images (for the default 20 %).
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise PlasticRLError(
            "the digits benchmark needs scikit-learn; install it with pip install scikit-learn"
        ) from exc
    data = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(
        data.data, data.target, test_size=test_fraction, random_state=seed, stratify=data.target
    )
    # pixel values are 0..16; scaling to [0, 1] makes them spike probabilities / rates
    as_x = lambda a: torch.as_tensor(a, dtype=torch.float32) / 16.0  # noqa: E731
    as_y = lambda a: torch.as_tensor(a, dtype=torch.long)  # noqa: E731
    return DigitsSplit(as_x(x_tr), as_y(y_tr), as_x(x_te), as_y(y_te))
