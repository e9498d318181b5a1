"""Linear probe: how linearly decodable the labels are from frozen features."""
from __future__ import annotations

import torch

from plasticrl.errors import PlasticRLError


def linear_probe(
    f_train: torch.Tensor, y_train: torch.Tensor, f_test: torch.Tensor, y_test: torch.Tensor, seed: int = 0
) -> float:
    """Test accuracy of an L2-regularised logistic regression (scikit-learn) fit on ``f_train``.

    Features are standardised with the training statistics first, so the probe measures the
    representation rather than its scale.
    """
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise PlasticRLError("the linear probe needs scikit-learn; pip install scikit-learn") from exc
    scaler = StandardScaler().fit(f_train.numpy())
    clf = LogisticRegression(max_iter=2000, C=1.0, random_state=seed)
    clf.fit(scaler.transform(f_train.numpy()), y_train.numpy())
    return float((clf.predict(scaler.transform(f_test.numpy())) == y_test.numpy()).mean())
