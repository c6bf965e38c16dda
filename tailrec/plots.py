"""Small matplotlib helpers: every plot has a title and labelled axes.

Each function draws on the ``ax`` it is given (or a new one) and returns it,
so notebooks can combine plots in one figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from tailrec.metrics import lorenz_curve


def _axes(ax: Axes | None) -> Axes:
    return ax if ax is not None else plt.subplots(figsize=(6, 4))[1]


def plot_count_histogram(counts: np.ndarray, what: str, ax: Axes | None = None) -> Axes:
    """Histogram of interactions per user or per item on a log-scaled count axis."""
    ax = _axes(ax)
    bins = np.logspace(0, np.log10(max(counts.max(), 2)), 30)
    ax.hist(counts[counts > 0], bins=bins, color="tab:blue", edgecolor="white")
    ax.set_xscale("log")
    ax.set_xlabel(f"interactions per {what} (log scale)")
    ax.set_ylabel(f"number of {what}s")
    ax.set_title(f"Interactions per {what}")
    return ax


def plot_lorenz(curves: dict[str, np.ndarray], ax: Axes | None = None) -> Axes:
    """Lorenz curves of several count vectors, with the line of perfect equality."""
    ax = _axes(ax)
    for label, counts in curves.items():
        population, share = lorenz_curve(counts)
        ax.plot(population, share, label=label)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect equality")
    ax.set_xlabel("share of entities, least active first")
    ax.set_ylabel("share of all interactions")
    ax.set_title("Lorenz curve of activity")
    ax.legend()
    return ax


def plot_training_curves(history: pd.DataFrame, best_epoch: int, ax: Axes | None = None) -> Axes:
    """Training loss and validation NDCG per epoch, on two y-axes."""
    ax = _axes(ax)
    ax.plot(
        history["epoch"], history["train_loss"], marker="o", color="tab:blue", label="training loss"
    )
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (binary cross-entropy)", color="tab:blue")
    right = ax.twinx()
    right.plot(
        history["epoch"],
        history["validation_ndcg"],
        marker="s",
        color="tab:orange",
        label="validation NDCG",
    )
    right.set_ylabel("validation NDCG@10", color="tab:orange")
    ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
    ax.set_title("Training loss and validation NDCG@10")
    # One legend for the lines of both y-axes.
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="center right")
    return ax


def plot_embedding_2d(
    points: np.ndarray,
    labels: Sequence[str],
    highlight: dict[int, str] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Scatter of 2-D points coloured by label, with optional annotated points.

    ``points`` has shape (n, 2); ``highlight`` maps a row to the text shown beside it.
    """
    ax = _axes(ax)
    labels = np.asarray(labels)
    for label in pd.unique(labels):
        mask = labels == label
        ax.scatter(points[mask, 0], points[mask, 1], s=8, alpha=0.6, label=str(label))
    for row, text in (highlight or {}).items():
        ax.annotate(text, points[row], fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("first principal component")
    ax.set_ylabel("second principal component")
    ax.set_title("Item text embeddings, projected to 2-D")
    ax.legend(fontsize=7, markerscale=2, loc="best")
    return ax


def plot_metric_by_segment(table: pd.DataFrame, metric: str, ax: Axes | None = None) -> Axes:
    """Grouped bars: one group per segment, one bar per model.

    ``table`` is indexed by segment with one column per model.
    """
    ax = _axes(ax)
    table.plot.bar(ax=ax, rot=0)
    ax.set_xlabel("user segment")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by user segment")
    ax.legend(title="model")
    return ax


def plot_rates_by_round(
    table: pd.DataFrame, metric: str, title: str, ax: Axes | None = None
) -> Axes:
    """One line per model across feedback rounds; ``table``: index round, a column per model."""
    ax = _axes(ax)
    for model in table.columns:
        ax.plot(table.index, table[model], marker="o", label=model)
    ax.set_xticks(table.index)
    ax.set_xlabel("round")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.legend(title="model")
    return ax
