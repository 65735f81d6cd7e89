"""The stages of the main job, and what they share (``AuditRun``).

Each stage reads and extends an ``AuditRun``: the base model and the data, the DP models (one
release artifact per claimed ε), then one audit each — the regime comparison (utility), the
black-box membership audit, the white-box canary audit, and the forget request with its
unlearning audit. ``audits.pipeline`` runs them in order and writes the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timm.models.vision_transformer import VisionTransformer

from audits.gate import data_section, delta_check, noise_check
from audits.privacy.blackbox import run_privacy_audit
from audits.privacy.input_canaries import DEFAULT_RANK, Construction, run_input_canary_audit
from audits.privacy.whitebox import run_whitebox_audit
from audits.regime_comparison import run_regime_comparison_audit
from audits.results import AuditResult, Check, Status
from audits.unlearning import run_unlearning_audit
from audits.utility import run_utility_audit
from privtangent import inputs
from privtangent.config.schema import RunConfig
from privtangent.data.dataset import ImageData
from privtangent.dp.run import train_dp_run
from privtangent.features import FeatureCache
from privtangent.finetune import FineTuneModel
from privtangent.models.pretrain import DEFAULT_MODEL
from privtangent.paths import feature_cache_dir
from privtangent.train.run import RunResult


@dataclass
class AuditRun:
    """What the stages share: config, output folder, data, models, and the growing result."""

    config: RunConfig
    out_dir: Path
    progress: bool = True
    log: Callable[[str], None] = print
    base: VisionTransformer | None = None
    base_info: dict[str, Any] = field(default_factory=dict)
    data_info: dict[str, Any] = field(default_factory=dict)
    train: ImageData | None = None
    test: ImageData | None = None
    cache: FeatureCache = field(default_factory=lambda: FeatureCache(feature_cache_dir()))
    result: AuditResult = field(default_factory=AuditResult)
    seconds: dict[str, float] = field(default_factory=dict)
    dp_models: dict[float, tuple[Any, RunResult]] = field(default_factory=dict)
    model_dir: Path | None = None  # a released model directory being audited (``privtangent audit --model``)
    artifact: dict[str, Any] = field(default_factory=dict)  # its manifest
    released: FineTuneModel | None = None  # the released model itself

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.log(f"▶ {name}")
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 2)
        self.log(f"  done in {self.seconds[name]:.1f} s")

    @property
    def model(self) -> VisionTransformer:
        assert self.base is not None, "the base-model stage runs first"
        return self.base

    @property
    def train_data(self) -> ImageData:
        assert self.train is not None, "the data stage runs first"
        return self.train

    @property
    def test_data(self) -> ImageData:
        assert self.test is not None, "the data stage runs first"
        return self.test


# -- stages ---------------------------------------------------------------------------------
def load_base(run: AuditRun) -> None:
    run.base, run.base_info = inputs.load_base(run.config.model, progress=run.progress)


def load_data(run: AuditRun) -> None:
    run.train, run.test, run.data_info = inputs.load_data(run.config.data, run.model, seed=run.config.training.seed)
    section, check = data_section(run.train, run.test, run.data_info)
    run.result.sections["data"] = section
    run.result.checks.append(check)


def accountant_name(sample_rate: float) -> str:
    """The accountant that actually produced the ε (PRV is replaced by the exact one at q = 1)."""
    if sample_rate == 1.0:
        return ("exact Gaussian DP: full-batch DP-GD is μ-GDP with μ = √T/σ (Dong, Roth & Su 2022); the PRV "
                "accountant is replaced by this exact conversion when q = 1")
    return "PRV (Gopi, Lee & Wutschitz 2021): numerical composition of the Poisson-subsampled Gaussian, upper estimate"


def base_statement(base_info: dict[str, Any]) -> str:
    """What the DP statement can say about the base model, from what was actually loaded."""
    if base_info.get("embedded_default"):
        return ("The base model was pretrained by privtangent on Fashion-MNIST classes 0–4, which are not in the "
                "fine-tuning data; it is treated as public and is not covered.")
    if base_info.get("checkpoint"):
        return (f"The base model's weights come from {base_info['checkpoint']}; whatever data they were trained on is "
                "not covered by this guarantee (it is treated as public).")
    return "The base model was randomly initialized (no checkpoint): it holds no data."


def _accounting_check(eps: float, privacy: dict[str, Any]) -> Check:
    ok = privacy["epsilon"] <= eps * (1 + 1e-9)
    rdp = privacy.get("epsilon_rdp")
    return Check(f"dp-accounting-eps{eps:g}", "dp_statement", f"accounted ε within the claim (ε = {eps:g})",
                 Status.PASS if ok else Status.FAIL,
                 f"PRV ε = {privacy['epsilon']:.3f} {'≤' if ok else '>'} {eps:g} at δ = {privacy['delta']:g} "
                 f"(RDP cross-check {rdp if rdp is not None else float('nan'):.3f}); σ = {privacy['sigma']:.3f}")


def train_dp_models(run: AuditRun) -> None:
    """One DP model per claimed ε, each saved as a release artifact under ``OUT/models/eps-E``."""
    rows = []
    for eps in run.config.privacy.epsilons:
        cfg = run.config.dp_config(eps)
        out = run.out_dir / "models" / f"eps-{eps:g}"
        result = train_dp_run(run.model, run.train_data, cfg, out, test=run.test, base_record=run.base_info,
                              data_extra=run.data_info, cache=run.cache, progress=run.progress)
        run.dp_models[float(eps)] = (cfg, result)
        privacy = result.manifest["privacy"]
        rows.append({"epsilon_target": eps, "epsilon": privacy["epsilon"], "epsilon_rdp": privacy.get("epsilon_rdp"),
                     "delta": privacy["delta"], "sigma": privacy["sigma"], "clip": privacy["max_grad_norm"],
                     "sample_rate": privacy["sample_rate"], "steps": privacy["steps"],
                     "test_accuracy": result.metrics.get("test_accuracy"),
                     "model": str(out.relative_to(run.out_dir)), "model_sha256": result.manifest["sha256"]})
        run.result.checks.append(_accounting_check(float(eps), privacy))
    mechanism = run.config.privacy.mechanism
    run.result.checks.append(delta_check(mechanism.delta, len(run.train_data)))
    run.result.checks.append(noise_check(mechanism.noise_seed is not None))
    run.result.sections["dp_statement"] = _dp_statement(run, rows)


def _dp_statement(run: AuditRun, rows: list[dict[str, Any]]) -> dict[str, Any]:
    p, t = run.config.privacy, run.config.training
    first = run.dp_models[float(p.epsilons[0])][1].manifest["privacy"]
    seeded = p.mechanism.noise_seed is not None
    return {
        "privacy_unit": "one training example (an image and its label); add/remove-one adjacency",
        "adjacency": "add/remove one example",
        "accountant": accountant_name(first["sample_rate"]),
        "cross_check": ("RDP (Mironov 2017; Opacus): a looser upper bound, typically 8–15 % above the accountant's "
                        "ε, so an RDP value above the claim is expected and not a violation"),
        "mechanism": first["mechanism"],
        "sampling": first["sampling"],
        "clipping": first["clipping"],
        "noise": first["noise"],
        "covered": ("every access to the private training set during fine-tuning of the model that is released: "
                    "each step's gradient is clipped per example and noised. " + base_statement(run.base_info)
                    + " Shadow models, shards and canary runs made for this audit are not released."),
        "tuning_accounted": False,
        "tuning_note": first["hyperparameter_tuning"],
        "noise_seeded": seeded,
        "release_note": ("NOT FOR RELEASE: the noise was seeded for reproducibility" if seeded
                         else "noise drawn from operating-system entropy"),
        "model": f"TAFT: tangent model, last {t.blocks} block(s), regime {t.regime}, reset={t.reset}, "
                 f"predicts with J·Δw only",
        "training_set_size": len(run.train_data),
        "released_models": "models/eps-E/ (model.safetensors, model.json, model_card.md) for each claimed ε",
        "runs": rows,
    }


def utility_stage(run: AuditRun) -> None:
    r = run.config.regimes
    train = run.train_data
    train = train.limit(r.train_limit) if r.train_limit is not None and len(train) > r.train_limit else train
    if r.budget_seconds is not None:
        run.result.add(run_regime_comparison_audit(
            run.model, train, run.test_data, regimes=r.regimes, epsilons=run.config.regime_epsilons,
            delta=run.config.privacy.mechanism.delta, seeds=list(range(r.seeds)), budget_seconds=r.budget_seconds,
            noise_seed=run.config.privacy.mechanism.noise_seed or 0, base_name=run.config.model.name or "default",
            cache=run.cache, progress=run.progress))
        return
    run.result.add(run_utility_audit(run.model, train=train, test=run.test, regimes=r.regimes,
                                     epsilons=run.config.regime_epsilons, seeds=list(range(r.seeds)),
                                     delta=run.config.privacy.mechanism.delta, train_size=len(train),
                                     test_size=len(run.test_data), dp_config=run.config.dp_config(),
                                     noise_seed=run.config.privacy.mechanism.noise_seed, cache=run.cache,
                                     progress=run.progress))


def privacy_stage(run: AuditRun) -> None:
    a = run.config.audit
    run.result.add(run_privacy_audit(run.model, run.train_data, test=run.test, epsilons=run.config.privacy.epsilons,
                                     delta=run.config.privacy.mechanism.delta, train_config=run.config.training,
                                     dp_config=run.config.dp_config(),
                                     population_size=min(a.population, len(run.train_data)),
                                     num_canaries=a.canaries, num_models=a.shadows, confidence=a.confidence,
                                     seed=run.config.training.seed, run_dir=run.out_dir / "privacy", cache=run.cache,
                                     progress=run.progress))


def whitebox_stage(run: AuditRun) -> None:
    a = run.config.audit
    run.result.add(run_whitebox_audit(run.model, run.train_data, run.config.dp_config(),
                                      num_canaries=a.whitebox_canaries, num_guesses=a.whitebox_guesses,
                                      confidence=a.confidence, seed=run.config.training.seed,
                                      epsilons=run.config.privacy.epsilons,
                                      noise_seed=run.config.privacy.mechanism.noise_seed, cache=run.cache,
                                      progress=run.progress))


def input_canary_stage(run: AuditRun) -> None:
    """The input-canary audit of the released models' recipe (``audit.input_canaries`` > 0; off by
    default: building the canaries is a one-time cost of minutes, cached afterwards)."""
    a = run.config.audit
    if not a.input_canaries:
        return
    probes = run.test_data.limit(min(1000, len(run.test_data))).materialize().images  # public images of the task
    # the public subspace has at most probes × (K − 1) directions; keep at most half of them
    rank = max(1, min(DEFAULT_RANK, probes.shape[0] * (run.train_data.num_classes - 1) // 2))
    run.result.add(run_input_canary_audit(run.model, run.train_data, run.config.dp_config(), probe_images=probes,
                                          epsilons=run.config.privacy.epsilons,
                                          construction=Construction(num_canaries=a.input_canaries, rank=rank,
                                                                    seed=run.config.training.seed),
                                          confidence=a.confidence, seed=run.config.training.seed,
                                          noise_seed=run.config.privacy.mechanism.noise_seed, progress=run.progress))


def unlearning_stage(run: AuditRun) -> None:
    s, a, m = run.config.shards, run.config.audit, run.config.model
    train = run.train_data
    never_seen = max(16, len(train) // 5)  # held out of the sharded model: the "never seen" reference
    run.result.add(run_unlearning_audit(
        run.model, train, test=run.test, run_dir=run.out_dir / "unlearning", num_shards=s.num_shards,
        data_size=len(train) - never_seen, num_forget=s.forget, num_never_seen=never_seen,
        base_name=m.name or DEFAULT_MODEL["name"], base_kwargs=dict(m.kwargs) if m.name else dict(DEFAULT_MODEL["kwargs"]),
        num_shadows=max(2, a.shadows // 2), train_config=run.config.training, confidence=a.confidence,
        seed=run.config.training.seed, cache=run.cache, progress=run.progress))


STAGES: list[tuple[str, Callable[[AuditRun], None]]] = [
    ("utility: regime comparison under DP", utility_stage),
    ("black-box membership audit", privacy_stage),
    ("white-box canary audit", whitebox_stage),
    ("input-canary audit (audit.input_canaries > 0)", input_canary_stage),
    ("shards, forget request and unlearning audit", unlearning_stage),
]


__all__ = ["AuditRun", "STAGES", "load_base", "load_data", "privacy_stage", "train_dp_models", "unlearning_stage",
           "utility_stage", "whitebox_stage", "input_canary_stage"]
