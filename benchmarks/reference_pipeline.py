"""A faithful re-implementation of the reference scripts' data pipeline (DeepMicroscopy/AMi-Br_Benchmark).

Kept here, not in the package: it exists only to be measured against. What it reproduces:
- images decoded with PIL per sample and per epoch, transformed with torchvision / timm transforms;
- end-to-end training with batch 8, a WeightedRandomSampler and DataLoader workers;
- linear probing that re-extracts every embedding once per fold, one image at a time (batch 1),
  then trains a linear head on the in-memory embeddings with batch 8.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler
from torchvision import transforms


class ImageDataset(Dataset):
    """PIL open + convert + transform per sample, as the reference's datasets do."""

    def __init__(self, paths: list[str], labels: list[int], transform: transforms.Compose) -> None:
        self.paths, self.labels, self.transform = paths, labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = Image.open(self.paths[i]).convert("RGB")
        return self.transform(image), torch.tensor(self.labels[i], dtype=torch.float32).unsqueeze(0)


def train_transform(mean: tuple, std: tuple, size: int = 224) -> transforms.Compose:
    """The reference's end-to-end training transform."""
    return transforms.Compose(
        [
            transforms.Resize((size, size)),
            transforms.RandomHorizontalFlip(),
            transforms.RandomVerticalFlip(),
            transforms.RandomRotation(10),
            transforms.ColorJitter(0.2, 0.2, 0.2, 0.1),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


def eval_transform(mean: tuple, std: tuple, size: int = 224) -> transforms.Compose:
    return transforms.Compose(
        [transforms.Resize((size, size)), transforms.ToTensor(), transforms.Normalize(mean, std)]
    )


def sampler_for(labels: list[int]) -> WeightedRandomSampler:
    counts = [labels.count(i) for i in range(2)]
    weights = [1.0 / counts[y] for y in labels]
    return WeightedRandomSampler(weights, len(weights), replacement=True)


def train_throughput(
    model: nn.Module,
    paths: list[str],
    labels: list[int],
    mean: tuple,
    std: tuple,
    steps: int,
    warmup: int = 2,
    workers: int = 2,
    size: int = 224,
) -> float:
    """Images per second of the reference training loop (batch 8, PIL per sample)."""
    ds = ImageDataset(paths, labels, train_transform(mean, std, size))
    loader = DataLoader(ds, batch_size=8, sampler=sampler_for(labels), num_workers=workers)
    opt = torch.optim.Adam(model.parameters(), lr=5e-5, weight_decay=1e-5)
    crit = nn.BCEWithLogitsLoss()
    model.train()
    dev = next(model.parameters()).device
    seen, start = 0, None
    for step, (x, y) in enumerate(loader):
        x, y = x.to(dev), y.to(dev)
        if step == warmup:
            _sync(dev)
            start, seen = time.perf_counter(), 0
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        opt.step()
        seen += len(x)
        if step + 1 >= warmup + steps:
            break
    _sync(dev)
    return seen / (time.perf_counter() - start)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


@torch.inference_mode()
def extract_batch1(model: nn.Module, paths: list[str], transform: transforms.Compose) -> np.ndarray:
    """The reference's embedding extraction: one image at a time."""
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for p in paths:
        x = transform(Image.open(p).convert("RGB")).unsqueeze(0).to(dev)
        out.append(model(x).squeeze(0).float().cpu().numpy())
    return np.stack(out)


def train_head(
    train_x: np.ndarray,
    train_y: list[int],
    val_x: np.ndarray,
    val_y: list[int],
    epochs: int,
    lr: float = 1e-3,
    wd: float = 1e-4,
) -> float:
    """The reference's probe head training (batch 8, sampler, Adam, plateau); returns val balanced acc."""
    from sklearn.metrics import balanced_accuracy_score

    head = nn.Linear(train_x.shape[1], 1)
    tx, vx = torch.from_numpy(train_x), torch.from_numpy(val_x)
    ty = torch.tensor(train_y, dtype=torch.float32).unsqueeze(1)
    train = torch.utils.data.TensorDataset(tx, ty)
    loader = DataLoader(train, batch_size=8, sampler=sampler_for(train_y), num_workers=0)
    val_loader = DataLoader(torch.utils.data.TensorDataset(vx), batch_size=8, shuffle=False, num_workers=0)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=wd)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=3, min_lr=1e-7)
    crit = nn.BCEWithLogitsLoss()
    best = 0.0
    for _ in range(epochs):
        head.train()
        for x, y in loader:
            opt.zero_grad()
            crit(head(x), y).backward()
            opt.step()
        head.eval()
        with torch.no_grad():
            preds = np.concatenate([(torch.sigmoid(head(x)) > 0.5).numpy().ravel() for (x,) in val_loader])
        score = balanced_accuracy_score(val_y, preds)
        best = max(best, score)
        sched.step(score)
    return best
