"""The fine-tuning loop for TAFT-k, NLFT-k and FC (paper sections 3, 4.2; Appendix A).

Adam on the trainable parameters, batches drawn from cached prefix features (an epoch
never reruns the frozen prefix), a step schedule (÷10 at 50% and 83% of the epochs, the
paper's 15 and 25 of 30), and weight decay as an explicit wd·‖Δw‖² penalty for TAFT (so
the objective stays the convex ridge problem of section 3) or decoupled (AdamW) for NLFT.
Optionally Δw is projected onto an L2 ball of radius R after each step (Appendix B).
Everything random is drawn from generators seeded by ``config.seed``; the global RNG is
left as it was found.

``fit`` is resumable: ``on_epoch_end`` receives everything a checkpoint needs (see
``privtangent.train.run``), and ``state`` continues a run from such a checkpoint to the
bit-identical result of an uninterrupted run (same thread count, same machine type).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor

from privtangent.data.dataset import ImageData
from privtangent.device import current_device
from privtangent.errors import CheckpointError, ConfigError
from privtangent.features import FeatureCache, Features
from privtangent.finetune import FineTuneModel, build_finetune_model
from privtangent.losses import make_loss
from privtangent.models.vit import replace_head
from privtangent.progress import Progress
from privtangent.train.config import TrainConfig
from privtangent.train.evaluate import evaluate

EpochHook = Callable[[int, FineTuneModel, torch.optim.Optimizer, object, torch.Generator, list], None]


@dataclass
class TrainResult:
    model: FineTuneModel
    metrics: dict
    history: list[dict] = field(default_factory=list)


def prepare_model(base: VisionTransformer, num_classes: int, config: TrainConfig) -> FineTuneModel:
    """The model to fine-tune: ``base`` with a fresh head (seeded), tangent or not."""
    task_model = replace_head(copy.deepcopy(base), num_classes, seed=config.seed)
    model = build_finetune_model(task_model, tangent=config.tangent, blocks=config.blocks, regime=config.regime,
                                 reset=config.reset, linearize_cls=config.linearize_cls, seed=config.seed)
    return model.to(current_device())


def make_optimizer(model: FineTuneModel, config: TrainConfig) -> torch.optim.Optimizer:
    params = list(model.trainable_parameters().values())
    if config.tangent:
        return torch.optim.Adam(params, lr=config.lr)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def milestones(epochs: int) -> list[int]:
    """Epochs after which the step schedule divides the lr by 10 (50% and 83% of the run)."""
    return sorted({max(1, round(0.5 * epochs)), max(1, round(0.83 * epochs))})


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    if config.schedule == "constant":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[], gamma=1.0)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones(config.epochs), gamma=0.1)


def penalty(model: FineTuneModel, config: TrainConfig) -> Tensor | float:
    """wd·‖Δw‖² for TAFT (squared: the ridge objective the paper writes); 0 for NLFT."""
    if not config.tangent or config.weight_decay == 0:
        return 0.0
    return config.weight_decay * sum(p.pow(2).sum() for p in model.trainable_parameters().values())


def objective(model: FineTuneModel, features: Tensor, labels: Tensor, config: TrainConfig,
              loss_fn: Callable | None = None) -> Tensor:
    """The training objective on one batch: loss + wd·‖Δw‖² (TAFT), or the loss alone (NLFT)."""
    loss_fn = loss_fn or make_loss(config.loss, config.alpha, config.kappa)
    return loss_fn(model.forward_features(features, output=config.output), labels) + penalty(model, config)


@torch.no_grad()
def project(model: FineTuneModel, radius: float | None) -> None:
    """Project the trainable vector onto {‖v‖₂ ≤ radius} (Appendix B)."""
    if radius is None:
        return
    params = list(model.trainable_parameters().values())
    squares = [p.pow(2).sum() for p in params]
    norm = torch.sqrt(sum(squares[1:], start=squares[0]))
    if norm > radius:
        for p in params:
            p.mul_(radius / norm)


def train_epoch(model: FineTuneModel, features: Features, labels: Tensor, config: TrainConfig,
                optimizer: torch.optim.Optimizer, loss_fn: Callable, generator: torch.Generator,
                bar: Progress | None = None) -> dict:
    model.train()
    device = next(model.parameters()).device
    order = torch.randperm(len(labels), generator=generator)
    total, correct, seen = 0.0, 0, 0
    for i in range(0, len(order), config.batch_size):
        idx = order[i : i + config.batch_size]
        batch, targets = features[idx].to(device), labels[idx].to(device)
        logits = model.forward_features(batch, output=config.output)
        loss = loss_fn(logits, targets)
        objective = loss + penalty(model, config)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        project(model, config.project_radius)
        total += float(loss.detach()) * len(idx)
        correct += int((logits.argmax(-1) == targets).sum())
        seen += len(idx)
        if bar is not None:
            bar.update(1)
    return {"train_loss": total / max(seen, 1), "train_accuracy": correct / max(seen, 1)}


def fit(base: VisionTransformer, train: ImageData, config: TrainConfig, *, test: ImageData | None = None,
        cache: FeatureCache | None = None, progress: bool = True, on_epoch_end: EpochHook | None = None,
        state: dict | None = None, model: FineTuneModel | None = None) -> TrainResult:
    """Fine-tune ``base`` on ``train`` as ``config`` says; evaluate on ``test`` if given.

    ``model`` (optional) is the model to train, already built by ``prepare_model(base,
    train.num_classes, config)`` (a caller that wants its initial state, e.g. the
    linearization point, builds it first). ``on_epoch_end(epoch, model, optimizer,
    scheduler, generator, history)`` is called after each epoch (checkpointing); an
    exception it raises stops the run. ``state`` (from a checkpoint) resumes a run: it
    holds ``epoch``, ``trainable``, ``optimizer``, ``scheduler``, ``generator`` and ``history``.
    """
    if len(train) == 0:
        raise ConfigError(f"{train.name}: no training samples")
    cache = cache or FeatureCache()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # nothing below should draw from it; if it does, it is seeded
        return _fit(base, train, config, test, cache, progress, on_epoch_end, state, model)


def _fit(base, train, config, test, cache, progress, on_epoch_end, state, model) -> TrainResult:
    model = model if model is not None else prepare_model(base, train.num_classes, config)
    loss_fn = make_loss(config.loss, config.alpha, config.kappa)
    features = cache.features(model.base, model.start, train, progress=progress)
    optimizer, generator = make_optimizer(model, config), torch.Generator().manual_seed(config.seed)
    scheduler = make_scheduler(optimizer, config)
    history: list[dict] = []
    first_epoch = 0
    if state is not None:
        first_epoch = int(state["epoch"])
        if not 0 <= first_epoch <= config.epochs:
            raise CheckpointError(f"resume state is at epoch {first_epoch}, outside this run's 1..{config.epochs}")
        model.load_trainable(state["trainable"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        history = [dict(h) for h in state["history"]]
    steps = (config.epochs - first_epoch) * ((len(train) + config.batch_size - 1) // config.batch_size)
    previous_seconds = sum(h.get("seconds", 0.0) for h in history)
    start = time.perf_counter()
    with Progress(steps, f"{config.method} on {train.name}", unit="step", enabled=progress) as bar:
        for epoch in range(first_epoch, config.epochs):
            epoch_start = time.perf_counter()
            row = train_epoch(model, features, train.labels, config, optimizer, loss_fn, generator, bar)
            scheduler.step()
            history.append({"epoch": epoch + 1, **row, "lr": optimizer.param_groups[0]["lr"],
                            "seconds": time.perf_counter() - epoch_start})
            bar.report(epoch=f"{epoch + 1}/{config.epochs}", loss=row["train_loss"], accuracy=row["train_accuracy"])
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, model, optimizer, scheduler, generator, history)
    metrics = {"train_seconds": previous_seconds + time.perf_counter() - start}
    if history:
        metrics.update({k: v for k, v in history[-1].items() if k not in ("epoch", "seconds", "lr")})
    if test is not None:
        test_features = cache.features(model.base, model.start, test, progress=progress)
        report = evaluate(model, test_features, test.labels, test.num_classes, loss_fn, config.output)
        metrics.update({"test_accuracy": report["accuracy"], "test_per_class_accuracy": report["per_class_accuracy"],
                        "test_loss": report.get("loss")})
    return TrainResult(model, metrics, history)
