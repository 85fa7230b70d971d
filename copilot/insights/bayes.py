"""A Bayesian logistic regression small enough to trust with a few dozen outcomes.

Each weight has a Gaussian prior (a mean that says which way a signal usually pushes, and a spread that says how sure
that is); the fit is the posterior mode (Newton's method on the penalised log-likelihood) with a Laplace
approximation of the posterior, and predictions are moderated by the weights' uncertainty (MacKay's probit
approximation), so few outcomes give cautious probabilities near the base rate instead of confident made-up ones.
Features are centred on the training mean: a signal's contribution is its weight times how far the record is from an
average one, which is what the explanations show.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from copilot.errors import InvalidInput


@dataclass(frozen=True)
class Prior:
    name: str
    mean: float
    sd: float


class Contribution(BaseModel):
    name: str
    value: float = Field(description="The record's value of the signal.")
    logit: float = Field(description="What it adds to the log-odds against an average record.")


class BayesLogit:
    def __init__(self, priors: Sequence[Prior], intercept_sd: float = 1.5, max_iter: int = 50) -> None:
        self.priors = list(priors)
        self.intercept_sd = intercept_sd
        self.max_iter = max_iter
        self.center: np.ndarray | None = None
        self.weights: np.ndarray | None = None  # intercept first
        self.covariance: np.ndarray | None = None

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.priors]

    def fit(self, x: np.ndarray, y: np.ndarray) -> BayesLogit:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(self.priors) or len(y) != len(x):
            raise InvalidInput(f"features: expected rows of {len(self.priors)} values, one outcome each")
        self.center = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        design = self._design(x)
        base = (y.sum() + 1) / (len(y) + 2)  # the smoothed base rate: the intercept's prior mean
        prior_mean = np.array([math.log(base / (1 - base)), *(p.mean for p in self.priors)])
        precision = np.diag([1 / self.intercept_sd**2, *(1 / p.sd**2 for p in self.priors)])
        w = prior_mean.copy()
        for _ in range(self.max_iter):
            p = _sigmoid(design @ w)
            gradient = design.T @ (y - p) - precision @ (w - prior_mean)
            hessian = design.T @ (design * (p * (1 - p))[:, None]) + precision
            step = np.linalg.solve(hessian, gradient)
            w = w + step
            if np.max(np.abs(step)) < 1e-8:
                break
        p = _sigmoid(design @ w)
        self.weights = w
        self.covariance = np.linalg.inv(design.T @ (design * (p * (1 - p))[:, None]) + precision)
        return self

    def _design(self, x: np.ndarray) -> np.ndarray:
        return np.hstack([np.ones((len(x), 1)), x - self.center])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities moderated by the posterior uncertainty of the weights."""
        design = self._design(np.asarray(x, dtype=float))
        mean = design @ self.weights
        variance = np.einsum("ij,jk,ik->i", design, self.covariance, design)
        return _sigmoid(mean / np.sqrt(1 + math.pi * variance / 8))

    def contributions(self, row: Sequence[float]) -> list[Contribution]:
        """Each signal's push on the log-odds for one record, largest first."""
        centred = np.asarray(row, dtype=float) - self.center
        out = [
            Contribution(name=name, value=round(float(value), 4), logit=round(float(weight * offset), 4))
            for name, value, weight, offset in zip(self.names, row, self.weights[1:], centred, strict=True)
        ]
        return sorted(out, key=lambda c: -abs(c.logit))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(z, -40, 40)))


# -- calibration ----------------------------------------------------------------------------------
class ReliabilityBin(BaseModel):
    low: float
    high: float
    count: int
    mean_predicted: float | None
    observed: float | None


class Calibration(BaseModel):
    """Out-of-fold predictions scored against the outcomes."""

    folds: int
    repeats: int
    examples: int
    positives: int
    base_rate: float
    brier: float
    brier_base_rate: float = Field(description="Brier score of always predicting the training folds' base rate.")
    brier_skill: float = Field(description="1 - brier / brier_base_rate: above 0 beats the base rate.")
    log_loss: float
    auc: float | None
    reliability: list[ReliabilityBin]


def cross_validate(
    make: type[BayesLogit] | object,
    x: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = 5,
    repeats: int = 3,
    seed: int = 0,
    bins: int = 5,
) -> Calibration:
    """Stratified k-fold, repeated with shuffled folds; every example is predicted by models that never saw it."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=int)
    predicted, truth, base = [], [], []
    for repeat in range(repeats):
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed + repeat)
        for train, test in splitter.split(x, y):
            model = make().fit(x[train], y[train])  # type: ignore[operator]
            predicted.extend(model.predict(x[test]))
            truth.extend(y[test])
            base.extend([y[train].mean()] * len(test))
    p, t, b = np.array(predicted), np.array(truth), np.array(base)
    brier, brier_base = float(np.mean((p - t) ** 2)), float(np.mean((b - t) ** 2))
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    return Calibration(
        folds=folds,
        repeats=repeats,
        examples=len(y),
        positives=int(y.sum()),
        base_rate=round(float(y.mean()), 4),
        brier=round(brier, 4),
        brier_base_rate=round(brier_base, 4),
        brier_skill=round(1 - brier / brier_base, 4) if brier_base else 0.0,
        log_loss=round(float(-np.mean(t * np.log(clipped) + (1 - t) * np.log(1 - clipped))), 4),
        auc=round(float(roc_auc_score(t, p)), 4) if 0 < t.sum() < len(t) else None,
        reliability=reliability(p, t, bins),
    )


def reliability(p: np.ndarray, t: np.ndarray, bins: int = 5) -> list[ReliabilityBin]:
    """Predicted against observed rates in equal-width probability bins."""
    out = []
    for index in range(bins):
        low, high = index / bins, (index + 1) / bins
        inside = (p >= low) & ((p < high) | (index == bins - 1))
        count = int(inside.sum())
        out.append(
            ReliabilityBin(
                low=low,
                high=high,
                count=count,
                mean_predicted=round(float(p[inside].mean()), 4) if count else None,
                observed=round(float(t[inside].mean()), 4) if count else None,
            )
        )
    return out
