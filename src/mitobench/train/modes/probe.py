"""Linear probing: a head on frozen embeddings (torch under the recipe, or logistic regression)."""

from __future__ import annotations

import time

import torch
from safetensors.torch import save_file

from mitobench.metrics.binary import best_threshold
from mitobench.models.encoder import Encoder
from mitobench.recipes.config import ProbeConfig
from mitobench.train.batches import EmbeddingBatches
from mitobench.train.loop import FitContext, FitResult
from mitobench.train.model import Classifier, trainable_state
from mitobench.train.modes.base import ModeOptions, TrainingMode
from mitobench.train.sklearn_probe import fit_logistic


class Probe(TrainingMode):
    name = "probe"
    on_embeddings = True

    def classifier(self, encoder: Encoder, options: ModeOptions) -> Classifier:
        """The head alone: it trains on the encoder's cached embeddings."""
        return Classifier(None, encoder.embed_dim)

    def inference_model(self, encoder: Encoder, options: ModeOptions) -> Classifier:
        for p in encoder.parameters():
            p.requires_grad_(False)
        return Classifier(encoder, encoder.embed_dim)

    def fit(self, model: Classifier, ctx: FitContext) -> FitResult:
        if ctx.options.of(ProbeConfig).method == "torch":
            return super().fit(model, ctx)
        assert isinstance(ctx.train, EmbeddingBatches) and isinstance(ctx.val, EmbeddingBatches)
        return _fit_logistic(model, ctx.train, ctx.val, ctx)


def _fit_logistic(
    model: Classifier, train: EmbeddingBatches, val: EmbeddingBatches, ctx: FitContext
) -> FitResult:
    """scikit-learn's logistic regression, C chosen on validation, written as the linear head."""
    cfg, options, fold = ctx.cfg, ctx.options, ctx.fold
    started = time.perf_counter()
    weight, bias, c, auroc = fit_logistic(
        train.embeddings, train.labels, val.embeddings, val.labels, options.of(ProbeConfig).c_grid, cfg.seed
    )
    with torch.no_grad():
        model.head.weight.copy_(weight)
        model.head.bias.copy_(bias)
    fold.path.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(fold.best))
    with torch.no_grad():
        logits = model(torch.from_numpy(val.embeddings).to(model.head.weight.device))
    probs = torch.sigmoid(logits).cpu().numpy()
    threshold = best_threshold(val.labels, probs) if cfg.threshold == "tune" else cfg.fixed_threshold
    result = FitResult(0, auroc, threshold, 1, [{"C": c, "val_auroc": auroc}], time.perf_counter() - started)
    fold.write_fit(result.__dict__)
    return result
