"""The history model's loss over a sample of the catalogue, for catalogues too large for all of it.

The full loss of :func:`tailrec.history_model.train_history_model` scores
every item for every user of a batch: ``B x n_items`` logits, and a history
matrix of the same size. Its cost per epoch is ``users x items``, so it grows
with the square of the data when users and items grow together. Here a batch
touches only the items it needs:

- the user vector is a sum over the user's kept history items
  (``index_add``, not a dense ``B x n_items`` product);
- each user's logits are those of their own items (the positives) and of
  ``negatives`` items drawn uniformly for the whole batch;
- the softmax's normaliser is estimated from that sample: the user's own
  items are counted exactly, and a drawn item the user has not seen stands
  for ``n_items / negatives`` items (each draw hits an item with probability
  ``1 / n_items``, so the weighted sum is unbiased for the unseen items' sum
  of exponentials); a drawn item that is one of the user's own counts zero.

The per-user loss is the same as the full one, ``log Z - mean of the
positives' logits``, with ``log Z`` estimated; the estimate tightens as
``negatives`` grows (the log of an unbiased sum is slightly low on average).
The loss costs ``interactions + users x negatives`` per epoch, linear in the
data; the optimiser still updates every item's row at each step (dense
gradients, which DistributedDataParallel can reduce), a cost of ``steps x
items`` that dominates only for very large catalogues.

Each user's items are kept in compressed rows (:class:`UserItemRows`), so a
batch is gathered without building a dense matrix.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch


class UserItemRows:
    """Each user's distinct items, as compressed rows (``indptr``, ``items``) of int64 tensors."""

    def __init__(self, interactions: pd.DataFrame, n_users: int) -> None:
        pairs = interactions[["user_index", "item_index"]].drop_duplicates()
        pairs = pairs.to_numpy(dtype=np.int64)  # as history_matrix reads them
        order = np.lexsort((pairs[:, 1], pairs[:, 0]))
        counts = np.bincount(pairs[:, 0], minlength=n_users)
        self.indptr = torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
        self.items = torch.from_numpy(np.ascontiguousarray(pairs[order, 1], dtype=np.int64))

    def degrees(self) -> torch.Tensor:
        """Distinct items per user, (n_users,)."""
        return self.indptr[1:] - self.indptr[:-1]

    def gather(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The items of ``users`` (B,): each one's batch row, its item, and its place in its row."""
        starts = self.indptr[users]
        lengths = self.indptr[users + 1] - starts
        row = torch.repeat_interleave(torch.arange(len(users)), lengths)
        first = torch.cumsum(lengths, 0) - lengths
        place = torch.arange(int(lengths.sum())) - first[row]
        return row, self.items[starts[row] + place], place


def sampled_batch_loss(
    model: torch.nn.Module,
    rows: UserItemRows,
    global_degrees: torch.Tensor,
    users: torch.Tensor,
    profiles: torch.Tensor,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[torch.Tensor, int]:
    """The summed loss of this process's users in a batch, and how many users that was.

    ``users`` is the whole batch (every process draws the same batches); only
    the users whose rows ``rows`` holds are scored here, so under
    :mod:`tailrec.distributed` each process handles its own shard. The random
    draws (hidden history items, profile-only users, negatives) are made for
    the whole batch from ``global_degrees`` (every user's item count over all
    shards), so they do not depend on how the users were sharded.
    """
    config = model.config
    n_items = model.n_items
    row, items, place = rows.gather(users)
    # Draws for the whole batch, then this shard's share of them.
    batch_lengths = global_degrees[users]
    draws = torch.rand(int(batch_lengths.sum()), generator=generator)
    profile_only = torch.rand(len(users), generator=generator) < config.profile_only_rate
    negatives = torch.randint(n_items, (config.negatives,), generator=generator)
    first = torch.cumsum(batch_lengths, 0) - batch_lengths
    kept = (draws[first[row] + place] >= config.input_dropout) & ~profile_only[row]

    own = torch.unique(row)  # batch rows with items in this shard
    if len(own) == 0:
        return torch.zeros((), device=device), 0
    local = torch.full((len(users),), -1, dtype=torch.long)
    local[own] = torch.arange(len(own))
    row = local[row]
    needed, index = torch.unique(torch.cat([items, negatives]), return_inverse=True)
    item_index, negative_index = index[: len(items)], index[len(items) :]
    needed, row, item_index, negative_index, kept = (
        t.to(device) for t in (needed, row, item_index, negative_index, kept)
    )
    history_vectors = model.history_item_vectors(needed)
    target_vectors = model.item_vectors(needed)
    bias = model.item_bias.index_select(0, needed)

    kept_counts = torch.zeros(len(own), device=device).index_add(0, row, kept.float())
    sums = torch.zeros(len(own), history_vectors.shape[1], device=device)
    sums = sums.index_add(0, row[kept], history_vectors.index_select(0, item_index[kept]).float())
    user_vectors = sums / kept_counts.clamp(min=1.0).sqrt().unsqueeze(1)
    if config.use_profile:
        user_vectors = user_vectors + model.profile_term(profiles[users[own]].to(device))
    queries = user_vectors @ model.W

    positive = (queries.index_select(0, row) * target_vectors.index_select(0, item_index)).sum(1)
    positive = positive.float() + bias.index_select(0, item_index)
    negative = queries @ target_vectors.index_select(0, negative_index).T
    negative = negative.float() + bias.index_select(0, negative_index)
    negative = negative.masked_fill(
        _drawn_own_items(row, item_index, negative_index, len(own)), -math.inf
    )

    n_positive = torch.zeros(len(own), device=device).index_add(0, row, torch.ones_like(positive))
    # Each draw hits a given item with probability 1 / n_items, so a drawn unseen item
    # stands for n_items / negatives of them (the user's own items count zero when drawn).
    weight = math.log(n_items / config.negatives)
    log_z = _log_sum_exp_by_row(positive, row, negative + weight, len(own))
    positive_mean = torch.zeros(len(own), device=device).index_add(0, row, positive) / n_positive
    return (log_z - positive_mean).sum(), len(own)


def _drawn_own_items(
    row: torch.Tensor, item_index: torch.Tensor, negative_index: torch.Tensor, n_rows: int
) -> torch.Tensor:
    """(rows, negatives) mask: True where a drawn negative is one of that row's own items.

    Found by binary search of each own item among the sorted draws, which
    costs ``interactions x log(negatives)`` rather than ``rows x negatives``
    comparisons; draws repeat, so each own item may hit several columns.
    """
    drawn, column = torch.sort(negative_index)
    low = torch.searchsorted(drawn, item_index)
    hits = torch.searchsorted(drawn, item_index, right=True) - low
    hit_rows = torch.repeat_interleave(row, hits)
    first = torch.repeat_interleave(low, hits)
    # Position of each hit within its run of equal draws: 0, 1, ... per own item.
    starts = torch.repeat_interleave(torch.cumsum(hits, 0) - hits, hits)
    within = torch.arange(len(first), device=row.device) - starts
    mask = torch.zeros(n_rows, len(negative_index), dtype=torch.bool, device=row.device)
    mask[hit_rows, column[first + within]] = True
    return mask


def _log_sum_exp_by_row(
    values: torch.Tensor, row: torch.Tensor, dense: torch.Tensor, n_rows: int
) -> torch.Tensor:
    """log(sum of exp) per row over ``values`` (grouped by ``row``) and ``dense`` (n_rows, S)."""
    peak = torch.full((n_rows,), -math.inf, device=values.device)
    peak = peak.scatter_reduce(0, row, values.detach(), reduce="amax")
    peak = torch.maximum(peak, dense.detach().max(1).values)
    total = torch.zeros(n_rows, device=values.device)
    total = total.index_add(0, row, torch.exp(values - peak[row]))
    total = total + torch.exp(dense - peak.unsqueeze(1)).sum(1)
    return peak + torch.log(total)
