"""Fine-tuning: TAFT (tangent), NLFT (non-linear) and FC, with checkpointed, resumable runs."""

from privtangent.train.config import ModelChoice, TrainConfig, default_loss, default_lr
from privtangent.train.evaluate import evaluate, predict_logits
from privtangent.train.run import RunResult, load_run, read_state, train_run
from privtangent.train.trainer import TrainResult, fit, prepare_model

__all__ = ["ModelChoice", "RunResult", "TrainConfig", "TrainResult", "default_loss", "default_lr", "evaluate", "fit",
           "load_run", "predict_logits", "prepare_model", "read_state", "train_run"]
