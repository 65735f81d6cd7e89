"""The names a user can choose, in configs and on the command line, in one place.

Importable without torch, so that every ``--help`` lists the choices without loading the
libraries that implement them; the implementing modules import their tuple from here.
"""

from __future__ import annotations

REGIMES = ("full", "bitfit", "layernorm", "fc")  # which parameters are fine-tuned (paper Table 3)
LOSSES = ("rsl", "ce", "mse")  # rescaled square loss (paper eq. 2), cross-entropy, mean squared error
TASKS = ("fashion-pretrain", "fashion-near", "digits", "fashion")  # the embedded default's data sets
OPTIMIZERS = ("adam", "sgd")
ACCOUNTANTS = ("prv", "rdp", "gdp")  # PRV (default), RDP (cross-check), exact Gaussian DP (q = 1)
PER_SAMPLE_METHODS = ("auto", "ghost", "vmap", "loop")  # per-sample gradient engines
FORGET_MODES = ("remove", "retrain")
SCHEDULES = ("step", "constant")
OUTPUTS = ("full", "jvp")  # tangent output: f_w + J·Δw, or J·Δw alone
TABLE1_METHODS = ("NLFT-k", "TAFT-k", "NLFT-1", "TAFT-1", "FC")  # the columns of the paper's Table 1
TABLE1_TASKS = ("near", "far")  # Fashion-MNIST 5–9 (near the pretraining task), digits (far from it)
TABLE1_EPOCHS = 8  # epochs per Table-1 run (measured to separate the methods on the embedded default)
