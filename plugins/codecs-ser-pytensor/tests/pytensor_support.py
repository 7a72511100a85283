"""Graphs the PyTensor plugin's tests share."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt


def model() -> dict[str, Any]:
    """A logistic regression: a prediction function and a training step updating W and b.

    ``train`` updates both shared variables; ``predict`` and ``norm`` read them, so
    after a load they must see what ``train`` writes.
    """
    rng = np.random.default_rng(0)
    W = pytensor.shared(rng.normal(size=(4, 3)), name="W")
    b = pytensor.shared(np.zeros(3), name="b")
    x = pt.dmatrix("x")
    y = pt.ivector("y")
    p = pt.special.softmax(x @ W + b, axis=-1)
    loss = -pt.mean(pt.log(p[pt.arange(y.shape[0]), y]))
    gW, gb = pytensor.grad(loss, [W, b])
    lr = pt.dscalar("lr")
    train = pytensor.function([x, y, lr], loss, updates=[(W, W - lr * gW), (b, b - lr * gb)])
    predict = pytensor.function([x], p)
    norm = pytensor.function([], pt.sum(W**2) + pt.sum(b**2))
    return {"train": train, "predict": predict, "norm": norm, "W": W, "b": b}


def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.normal(size=(8, 4)), rng.integers(0, 3, size=8).astype(np.int32)
