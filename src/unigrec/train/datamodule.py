"""LightningDataModule over the split: training sequences (one per user window, plus the catalogue's
alignment searches when on) and validation prompts."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from unigrec.inference.prompts import PromptExample
from unigrec.model.batch import SequenceBatch, collate_sequences
from unigrec.model.tokenizer import TokenSequence


class ListDataset(Dataset):
    def __init__(self, rows: Sequence[object]) -> None:
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> object:
        return self.rows[index]


class SequenceCollator:
    """Picklable collate (DataLoader workers) for training sequences (right-padded: see model.batch)."""

    def __init__(self, query_table: np.ndarray, n_query_tokens: int, pad_token: int) -> None:
        self.query_table = query_table
        self.n_query_tokens = n_query_tokens
        self.pad_token = pad_token

    def __call__(self, rows: Sequence[TokenSequence]) -> SequenceBatch:
        return collate_sequences(rows, self.query_table, self.n_query_tokens, self.pad_token, pad_left=False)


class PromptCollator(SequenceCollator):
    """Collate prompts with their targets: (prompts, target items, is_search, labels, seen items).

    ``seen`` is (B, n_items) bool: the items of each prompt's context, which retrieval leaves out.
    """

    def __init__(self, query_table: np.ndarray, n_query_tokens: int, pad_token: int, n_items: int) -> None:
        super().__init__(query_table, n_query_tokens, pad_token)
        self.n_items = n_items

    def __call__(  # type: ignore[override]
        self, rows: Sequence[PromptExample]
    ) -> tuple[SequenceBatch, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        prompts = collate_sequences([r.prompt for r in rows], self.query_table, self.n_query_tokens, self.pad_token)
        targets = torch.tensor([r.target for r in rows], dtype=torch.long)
        is_search = torch.tensor([r.is_search for r in rows], dtype=torch.bool)
        labels = torch.tensor([r.label for r in rows], dtype=torch.long)
        seen = torch.zeros(len(rows), self.n_items, dtype=torch.bool)
        for row, r in enumerate(rows):
            seen[row, torch.from_numpy(r.seen)] = True
        return prompts, targets, is_search, labels, seen


class SplitDataModule(L.LightningDataModule):
    """Serves already-serialised sequences; the stage builds them once (cheap, deterministic)."""

    def __init__(
        self,
        train_sequences: Sequence[TokenSequence],
        alignment_sequences: Sequence[TokenSequence],
        val_examples: Sequence[PromptExample],
        query_table: np.ndarray,
        n_query_tokens: int,
        pad_token: int,
        n_items: int,
        batch_size: int,
        eval_batch_size: int,
        num_workers: int,
    ) -> None:
        super().__init__()
        self.train_sequences = list(train_sequences)
        self.alignment_sequences = list(alignment_sequences)
        self.val_examples = list(val_examples)
        self.train_collate = SequenceCollator(query_table, n_query_tokens, pad_token)
        self.prompt_collate = PromptCollator(query_table, n_query_tokens, pad_token, n_items)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers

    def train_dataloader(self) -> DataLoader | dict[str, DataLoader]:
        # Lightning swaps in a DistributedSampler under DDP, so each rank sees its own share of users.
        users = self._loader(self.train_sequences, self.batch_size)
        if not self.alignment_sequences:
            return users
        # Alignment sequences are one event long. Mixed into the users' batches each would be padded to a
        # whole history (~50x its cost); in their own batches they cost little. Each step takes one batch
        # of each (Lightning's CombinedLoader, "max_size_cycle"), sized so both loaders have the same
        # number of batches: every alignment sequence once per epoch, spread evenly over its steps.
        steps = max(len(users), 1)
        per_step = -(-len(self.alignment_sequences) // steps)
        return {"users": users, "alignment": self._loader(self.alignment_sequences, per_step)}

    def _loader(self, rows: Sequence[TokenSequence], batch_size: int) -> DataLoader:
        return DataLoader(
            ListDataset(rows),
            batch_size=batch_size,
            shuffle=True,
            collate_fn=self.train_collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            ListDataset(self.val_examples),
            batch_size=self.eval_batch_size,
            shuffle=False,
            collate_fn=self.prompt_collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
