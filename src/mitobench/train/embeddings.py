"""Frozen embeddings, extracted once per (model, weights, dataset, transform) and cached on disk.

Each entry is a safetensors file plus a JSON manifest; the key hashes the model spec, the
weights' identity, the dataset's content hash and the input transform, so entries are reused
across folds, runs and modes, and never reused when any of those change.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mitobench.data.dataset import Dataset
from mitobench.models.encoder import Encoder
from mitobench.paths import atomic_path, atomic_write_text, cache_dir
from mitobench.progress import NullProgress, Progress
from mitobench.train.batches import ImageBatches
from mitobench.train.loop import batched_outputs
from mitobench.train.precision import inference_batch, resolve

FORMAT = "2"
"""2: keyed by the encoder's transform and pooling. Format 1 entries may hold embeddings of blank
images (the float resize path clamped 0-255 values to [0, 1] off the CPU) and are never reused."""


def embedding_key(encoder: Encoder, content_key: str, precision: str) -> str:
    """Every input of an embedding: the spec's every field (read from the dataclass, so a field
    added later can never serve stale embeddings), the weights, the data, the transform, the
    pooling and the precision."""
    payload = json.dumps(
        {
            "v": FORMAT,
            "spec": encoder.spec.to_dict(),
            "weights": encoder.fingerprint,
            "data": content_key,
            "transform": encoder.transform.to_dict(),
            "pooling": encoder.pooling.value,
            "precision": precision,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class EmbeddingCache:
    """Disk cache of embeddings under `<cache>/embeddings`."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or cache_dir()) / "embeddings"
        self.hits = 0
        self.misses = 0

    def key(self, encoder: Encoder, content_key: str, precision: str) -> str:
        return embedding_key(encoder, content_key, precision)

    def get(
        self,
        encoder: Encoder,
        dataset: Dataset,
        images: np.ndarray,
        content_key: str,
        precision: str,
        dev: torch.device,
        batch_size: int = 64,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """(N, D) float32 embeddings of `images`, computed only on a cache miss."""
        precision = resolve(precision, dev).name  # keyed by what runs, not by `auto`
        key = self.key(encoder, content_key, precision)
        path = self.root / f"{encoder.spec.name}--{dataset.name}-{dataset.split}--{key}.safetensors"
        if path.is_file():
            try:
                emb = load_file(str(path))["embeddings"].numpy()
                if emb.shape[0] == len(images):
                    self.hits += 1
                    return emb
            except Exception:  # unreadable entry: recompute it
                path.unlink(missing_ok=True)
        self.misses += 1
        started = time.perf_counter()
        emb = extract(encoder, images, precision, dev, batch_size, progress)
        with atomic_path(path) as tmp:
            save_file({"embeddings": torch.from_numpy(emb)}, str(tmp))
        atomic_write_text(
            path.with_suffix(".json"),
            json.dumps(
                {
                    "model": encoder.spec.name,
                    "weights": encoder.weights_origin,
                    "dataset": dataset.key,
                    "n": len(images),
                    "dim": int(emb.shape[1]),
                    "transform": encoder.transform.to_dict(),
                    "pooling": encoder.pooling.value,
                    "precision": precision,
                    "seconds": round(time.perf_counter() - started, 2),
                    "ids_sha256": hashlib.sha256("\n".join(dataset.ids).encode()).hexdigest(),
                },
                indent=1,
            ),
        )
        return emb


def extract(
    encoder: Encoder,
    images: np.ndarray,
    precision: str,
    dev: torch.device,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> np.ndarray:
    """Embed uint8 images in batches (no augmentation)."""
    progress = progress or NullProgress()
    encoder.eval().to(dev)
    cnn = encoder.spec.convolutional
    if cnn:
        encoder.to(memory_format=torch.channels_last)
    out = np.empty((len(images), encoder.embed_dim), dtype=np.float32)
    data = ImageBatches(images, np.zeros(len(images), dtype=np.int64), encoder, [], cnn, dev)
    batch = inference_batch(batch_size, encoder.transform.size, dev)
    progress.start(f"embedding with {encoder.spec.name}", len(images))
    dtype = resolve(precision, dev).dtype
    for idx, emb in batched_outputs(encoder, len(images), data.get, batch, dtype, dev, progress):
        out[idx] = emb.float().cpu().numpy()
    progress.finish()
    return out
