"""Regression metrics of predicted constants and the paper's published figures to compare with."""

from __future__ import annotations

import numpy as np

PAPER_RANGE = (20.0, 80.0)  # GPa, of C11

# The paper's figures (mean (std) over 10 random splits): Table 1 for C11 and Tables 7-8 for all six.
PAPER_TABLE_1 = {  # C11, single-property models: MAPE %, R²
    "V-R-H avg": ("46.66", "-"),
    "2pt stats + reg": ("6.79", "-"),
    "VAE + GPR": ("7.23 (0.15)", "0.97"),
    "Reg-only": ("3.69 (0.17)", "0.99"),
    "VAE-Reg": ("3.50 (0.24)", "0.99"),
}
PAPER_TABLES_7_8 = {  # six-property models: MAPE % per property
    "VAE + LIN": ("14.25", "14.65", "12.87", "19.45", "18.96", "17.08"),
    "VAE + GPR": ("7.23", "6.97", "6.84", "8.17", "7.91", "8.04"),
    "VAE + SVR": ("6.76", "6.56", "6.43", "7.59", "7.36", "7.58"),
    "Reg-only": ("4.27", "4.16", "4.15", "5.82", "5.78", "6.00"),
    "VAE-Reg": ("3.99", "3.77", "3.82", "5.48", "5.33", "5.35"),
}


def regression_metrics(true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAPE (%), MASE (% of the mean value, Yang et al. 2018) and R² of one property.

    Examples
    --------
    >>> m = regression_metrics(np.array([10.0, 20.0]), np.array([11.0, 18.0]))
    >>> round(m["MAPE"], 6), round(m["MASE"], 6)
    (10.0, 10.0)
    """
    true, predicted = np.asarray(true, np.float64), np.asarray(predicted, np.float64)
    error = predicted - true
    total = np.sum((true - true.mean()) ** 2)
    return {
        "MAPE": float(100 * np.mean(np.abs(error) / np.abs(true))),
        "MASE": float(100 * np.mean(np.abs(error)) / np.mean(np.abs(true))),
        "R2": float(1 - np.sum(error**2) / total) if total > 0 else float("nan"),
    }
