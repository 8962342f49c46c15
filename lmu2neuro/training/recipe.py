"""Training: two recipes, seeded and resumable, on one device or several processes.

Recipes (``RECIPES``; ``--recipe``):
- ``plain`` (the default, for small data and few CPU epochs): Adam, lr 2.5e-3, betas (0.95, 0.999),
  learning rate x0.85 every `lr_step` epochs (default epochs // 10, so a run decays ten times as
  the 200-epoch reference run decays twenty times), batch 64, cross-entropy, no augmentation.
- ``paper`` (the LMUFormer paper's Speech Commands recipe, REFERENCE 1.2): the same Adam, x0.85
  every 10 epochs, batch 128, binary cross-entropy on mixup label weights (mixup on 60 % of the
  samples), and for speech SpecAugment masks (48 of 128), noise and a time roll
  (``training.augment`` says exactly what and where it departs from the official loader); QAT
  after the float phase for spiking models.
QAT: the first `qat_warmup` epochs train in float (default: half the epochs), the rest with the
model's fake quantization (``model.set_qat(True)``), so the deployed integer network is what was
optimised last. Only epochs in the final mode compete for best.pt.

Reproducible: seeded initialisation, per-epoch shuffling from a generator seeded with seed + epoch,
augmentation draws seeded by (seed, epoch, batch), deterministic torch algorithms. last.pt stores
optimizer, scheduler and RNG states after every epoch, so a run that is killed (even mid-epoch)
and resumed with ``resume=True`` repeats the lost epoch exactly and ends with the metrics of an
uninterrupted run, on any device and with any number of processes.

Devices and processes (``training.distributed``): ``device`` is cpu or cuda; under ``torchrun``
every process takes its share of each global batch and the model runs in DistributedDataParallel
with batch norm over the global batch, so N processes give the metrics of one; only rank 0 writes.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from lmu2neuro.core.atomic import write_json
from lmu2neuro.core.errors import UserError
from lmu2neuro.datasets import get_dataset
from lmu2neuro.datasets.arrays import own_data_sha256
from lmu2neuro.datasets.sequences import DatasetSplits, TensorSequences
from lmu2neuro.deploy.lowering import integer_forward
from lmu2neuro.training.augment import Augmentation, augment, batch_rng, soft_target_bce
from lmu2neuro.training.checkpoint import load_checkpoint, save_checkpoint
from lmu2neuro.training.distributed import World, check_launch, globalize_batch_norm

METRICS_SCHEMA = "lmu2neuro.metrics/1"
# Options that must not change between a run and its resumption (epochs, device and the number
# of processes may).
RESUME_FIXED = ("dataset", "dataset_options", "preset", "model", "overrides", "spiking", "recipe", "qat", "qat_warmup",
                "seed", "batch_size", "lr", "lr_step", "lr_gamma", "limit")


@dataclass(frozen=True)
class Recipe:
    """What a recipe fixes unless an option overrides it."""

    batch_size: int
    lr_step: int | None  # None: epochs // 10
    loss: str  # "cross_entropy" | "bce_mixup"
    augmentation: Augmentation
    qat: bool  # QAT after the float phase by default (spiking models)
    about: str


RECIPES: dict[str, Recipe] = {
    "plain": Recipe(64, None, "cross_entropy", Augmentation(), False,
                    "Adam 2.5e-3, x0.85 every epochs // 10 epochs, batch 64, cross-entropy, no augmentation"),
    "paper": Recipe(128, 10, "bce_mixup", Augmentation(mixup=0.6, spec_augment=True), True,
                    "Adam 2.5e-3 betas (0.95, 0.999), x0.85 every 10 epochs, batch 128, BCE on mixup labels "
                    "(0.6), SpecAugment masks 48/128, noise and time roll for speech, QAT after the float phase"),
}


@dataclass
class TrainConfig:
    """Everything one training run depends on (the `lmu2neuro train` options). ``None`` takes the
    recipe's value (batch_size, lr_step, qat)."""

    dataset: str = "digits"
    out: str = "runs/train"
    data_root: str | None = None
    dataset_options: dict = field(default_factory=dict)
    preset: str | None = "digits-small"
    # your own model instead of a preset: "FILE.py:FUNCTION" (training.user_model; code you chose to run)
    model: str | None = None
    overrides: dict = field(default_factory=dict)
    spiking: bool = True
    recipe: str = "plain"
    qat: bool | None = None  # None: the recipe's (paper: on for spiking models)
    qat_warmup: int | None = None  # float epochs before QAT; None = half of `epochs`
    epochs: int = 10
    seed: int = 0
    batch_size: int | None = None  # the global batch, shared by all processes; None: the recipe's
    lr: float = 2.5e-3
    lr_step: int | None = None  # None: the recipe's (plain: max(1, epochs // 10); paper: 10)
    lr_gamma: float = 0.85
    limit: int | None = None  # keep at most this many samples per split (quick runs, tests)
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    eval_batch_size: int = 256
    threads: int | None = None  # torch CPU threads while training; None keeps torch's setting
    device: str = "cpu"  # cpu or cuda; under torchrun each process takes cuda:LOCAL_RANK

    def recipe_spec(self) -> Recipe:
        if self.recipe not in RECIPES:
            raise UserError(f"--recipe {self.recipe}: unknown recipe; expected one of {', '.join(RECIPES)}")
        return RECIPES[self.recipe]

    def qat_enabled(self) -> bool:
        return bool(self.recipe_spec().qat and self.spiking) if self.qat is None else bool(self.qat)

    def global_batch(self) -> int:
        return int(self.batch_size) if self.batch_size is not None else self.recipe_spec().batch_size

    def warmup_epochs(self) -> int:
        if not self.qat_enabled():
            return self.epochs
        if self.qat_warmup is not None:
            return max(0, int(self.qat_warmup))
        return self.epochs // 2

    def step_size(self) -> int:
        if self.lr_step:
            return int(self.lr_step)
        return self.recipe_spec().lr_step or max(1, self.epochs // 10)


def _limited(ds: Dataset, limit: int | None, seed: int) -> Dataset:
    if limit is None or limit >= len(ds):
        return ds
    keep = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    if isinstance(ds, TensorSequences):
        return TensorSequences(ds.x[keep], ds.y[keep])
    return Subset(ds, keep.tolist())


def _batch(ds: Dataset, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(ds, TensorSequences):  # fast path: no per-item Python
        return ds.x[idx], ds.y[idx]
    items = [ds[int(i)] for i in idx]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items], dtype=torch.int64)


def _batches(ds: Dataset, batch_size: int, order: torch.Tensor | None = None):
    order = torch.arange(len(ds)) if order is None else order
    for start in range(0, len(order), batch_size):
        yield _batch(ds, order[start: start + batch_size])


def _shard(ds: Dataset, world: World | None) -> Dataset:
    """This process's contiguous part of ``ds`` (all of it in a single process)."""
    if world is None or world.size == 1:
        return ds
    part = world.share(len(ds))
    if isinstance(ds, TensorSequences):
        return TensorSequences(ds.x[part], ds.y[part])
    return Subset(ds, list(range(part.start, part.stop)))


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(iter(model.parameters()), torch.empty(0)).device


@torch.no_grad()
def evaluate(model: torch.nn.Module, ds: Dataset, batch_size: int = 256, world: World | None = None) -> dict:
    """Mean cross-entropy and accuracy of `model(x)` over `ds` (eval mode, current QAT setting), on
    the model's device; with a ``world`` of several processes each takes its part and the sums are
    reduced, so every process returns the figures of the whole set."""
    was_training = model.training
    model.eval()
    device = _device_of(model)
    loss_sum, correct, n = 0.0, 0, 0
    for x, y in _batches(_shard(ds, world), batch_size):
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss_sum += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        n += len(y)
    model.train(was_training)
    if world is not None:
        loss_sum, correct, n = world.sum([loss_sum, correct, n])
    return {"loss": loss_sum / max(n, 1), "accuracy": correct / max(n, 1)}


@torch.no_grad()
def integer_accuracy(model: torch.nn.Module, ds: Dataset, batch_size: int = 256) -> float:
    """Accuracy of argmax of `integer_forward(model, x)["scores"]`: the deployed integer network."""
    model.eval()
    correct, n = 0, 0
    for x, y in _batches(ds, batch_size):
        scores = integer_forward(model, x)["scores"]
        correct += int((scores.argmax(1) == y).sum())
        n += len(y)
    return correct / max(n, 1)


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": list(map(_plain, random.getstate()))}


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def _build(cfg: TrainConfig, data: DatasetSplits, train_ds: Dataset):
    """-> (model_config dict, model, user_model record or None). A user model's input scale is
    calibrated here from the training inputs unless the model brings one."""
    if cfg.model:
        from lmu2neuro.training import user_model

        path, func = user_model.parse_spec(cfg.model)
        facts = user_model.data_facts(data)
        model, digest = user_model.build(path, func, facts)
        x = train_ds.x if isinstance(train_ds, TensorSequences) else _batch(train_ds, torch.arange(len(train_ds)))[0]
        user_model.calibrate_if_needed(model, x)
        rec = user_model.record(path, func, digest, facts, model)
        return ({"name": f"user:{Path(path).name}:{func}", "class": type(model.model).__name__, "spiking": True,
                 "causal": True}, model, rec)
    from lmu2neuro.models.config import ModelConfig
    from lmu2neuro.models.registry import build_model

    try:
        mcfg = ModelConfig.from_preset(cfg.preset, input_size=data.input_size, num_classes=data.num_classes,
                                       spiking=cfg.spiking, **cfg.overrides)
    except UserError:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise UserError(f"--preset {cfg.preset}: {exc}".splitlines()[0]) from None
    return mcfg.to_dict(), build_model(mcfg), None


def _config_record(cfg: TrainConfig) -> dict:
    rec = asdict(cfg)
    # Resolved once at the start so that resuming with more --epochs keeps the original schedule.
    rec["qat"] = cfg.qat_enabled()
    rec["batch_size"] = cfg.global_batch()
    rec["warmup_epochs"] = cfg.warmup_epochs()
    rec["lr_step_epochs"] = cfg.step_size()
    for k in ("resume", "overwrite", "progress", "out", "data_root", "threads", "eval_batch_size", "device"):
        rec.pop(k)
    if cfg.model:  # the preset is not used
        rec["preset"] = None
    return rec


def check_config(cfg: TrainConfig) -> None:
    """The checks that need no data; UserError naming the option or file, before anything is
    written (and, under torchrun, by every process before they meet, so before rank 0 writes)."""
    cfg.recipe_spec()
    if cfg.model:
        from lmu2neuro.training.user_model import parse_spec

        path, _ = parse_spec(cfg.model)
        if not path.is_file():
            raise UserError(f"{path}: model file not found (--model {cfg.model}); expected FILE.py:FUNCTION")
        if cfg.overrides:
            raise UserError(f"--set: not with --model {cfg.model}; set your model's sizes in its file")
        if not cfg.spiking:
            raise UserError(f"--no-spiking: not with --model {cfg.model}; your model's neurons decide what spikes")
    if cfg.epochs < 1:
        raise UserError(f"--epochs {cfg.epochs}: expected at least 1")
    if cfg.global_batch() < 1:
        raise UserError(f"--batch-size {cfg.global_batch()}: expected at least 1")
    check_launch(cfg.device, cfg.global_batch())
    out = Path(cfg.out)
    last_path, metrics_path = out / "last.pt", out / "metrics.json"
    if cfg.resume and not last_path.is_file():
        raise UserError(f"{last_path}: not found; --resume continues a run from its last.pt (start without --resume)")
    if not cfg.resume and not cfg.overwrite and (last_path.exists() or metrics_path.exists()):
        raise UserError(f"{out}: already holds a training run; pass --resume to continue it, "
                        f"--overwrite to start again, or choose another --out")


def train(cfg: TrainConfig, on_batch: Callable[[int, int], None] | None = None) -> dict:
    """Run (or resume) training into `cfg.out`; see `_train`. `cfg.threads` sets torch's CPU
    threads for the run and restores them after: on a small, shared machine one thread avoids
    OpenMP contention that makes tiny models several times slower. Under torchrun the processes
    join one group here and leave it at the end."""
    check_config(cfg)
    previous = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    try:
        with World.start(cfg.device, cfg.global_batch()) as world:
            return _train(cfg, world, on_batch)
    finally:
        torch.set_num_threads(previous)


def _loss(kind: str, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The recipe's loss summed over the samples of this share."""
    if kind == "bce_mixup":
        return soft_target_bce(logits, target)
    return torch.nn.functional.cross_entropy(logits, y, reduction="sum")


def _train(cfg: TrainConfig, world: World, on_batch: Callable[[int, int], None] | None = None) -> dict:
    """Run (or resume) training into `cfg.out`; returns the metrics dict also written to metrics.json.

    Writes (rank 0 only) `out/last.pt` after every epoch, `out/best.pt` when validation accuracy
    improves, and `out/metrics.json` (per-epoch metrics, then "test" with float accuracy and, for
    spiking models, integer-mode accuracy and accuracy by frames seen). `on_batch(epoch, batch)`
    is called before each training step (progress hooks; tests use it to interrupt a run).
    """
    out = Path(cfg.out)
    last_path, best_path, metrics_path = out / "last.pt", out / "best.pt", out / "metrics.json"
    recipe = cfg.recipe_spec()
    batch_size = cfg.global_batch()
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    data = get_dataset(cfg.dataset, root=cfg.data_root, **cfg.dataset_options)
    train_ds = _limited(data.train, cfg.limit, cfg.seed)
    val_ds = _limited(data.val, cfg.limit, cfg.seed + 1)
    test_ds = _limited(data.test, cfg.limit, cfg.seed + 2)
    # on the CPU, from the seed: the same weights on every device
    model_config, model, user_rec = _build(cfg, data, train_ds)
    extra = {} if user_rec is None else {"user_model": user_rec}
    record = _config_record(cfg)
    history: dict = {"schema": METRICS_SCHEMA, "config": record, "model_config": model_config,
                     "dataset": {"name": cfg.dataset, "train": len(train_ds), "val": len(val_ds),
                                 "test": len(test_ds), "timesteps": data.timesteps,
                                 "input_size": data.input_size, "classes": data.class_names},
                     "epochs": [], "best": None}
    start_epoch = 0
    ckpt = None
    if cfg.resume:
        ckpt = load_checkpoint(last_path)
        stored = ckpt.get("train", {})
        for key in RESUME_FIXED:
            if key in stored and stored[key] != record[key]:
                raise UserError(f"{last_path}: run was started with {key}={stored[key]!r}, got {record[key]!r}; "
                                f"resume with the same options (only --epochs, --device and the number of "
                                f"processes may change)")
        stored_data = (ckpt.get("dataset") or {}).get("sha256")
        if stored_data is not None and stored_data != own_data_sha256(cfg.dataset):
            raise UserError(f"{cfg.dataset}: the data changed since {last_path} was written (sha256 differs); "
                            "resume with the data that started the run, or start again with --overwrite")
        stored_user = ckpt.get("user_model")
        if user_rec is not None and isinstance(stored_user, dict) and stored_user.get("sha256") != user_rec["sha256"]:
            raise UserError(f"{user_rec['file']}: model file changed since {last_path} was written; resume with "
                            f"the file that started the run, or start again with --overwrite")
        model.load_state_dict(ckpt["state_dict"])
    model.to(world.device)
    if world.size > 1:
        globalize_batch_norm(model, world.bn_group)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.95, 0.999))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size(), gamma=cfg.lr_gamma)
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])  # moves the state to the parameters' device
        scheduler.load_state_dict(ckpt["scheduler"])
        stored = ckpt.get("train", {})
        record["warmup_epochs"] = stored.get("warmup_epochs", record["warmup_epochs"])
        record["lr_step_epochs"] = stored.get("lr_step_epochs", record["lr_step_epochs"])
        history = ckpt["metrics"]
        history["config"] = record
        start_epoch = ckpt["epoch"]
        _set_rng_state(ckpt["rng"])
    step_model = model
    if world.size > 1:
        from torch.nn.parallel import DistributedDataParallel

        # the running statistics are the same in every process (batch norm over the global batch),
        # so they need no copy from rank 0 at each forward
        step_model = DistributedDataParallel(model, device_ids=[world.device.index] if world.device.type == "cuda"
                                             else None, forward_sync_buffers=False)
    dataset_record = {"name": cfg.dataset, "options": dict(cfg.dataset_options)}
    data_sha = own_data_sha256(cfg.dataset)
    if data_sha is not None:  # your own arrays: the checkpoint says which file it was trained on
        dataset_record["sha256"] = history["dataset"]["sha256"] = data_sha
    warmup = record["warmup_epochs"]
    qat = record["qat"]
    show = cfg.progress and world.main

    for epoch in range(start_epoch, cfg.epochs):
        qat_now = qat and epoch >= warmup
        model.set_qat(qat_now)
        model.train()
        order = torch.randperm(len(train_ds), generator=torch.Generator().manual_seed(cfg.seed + epoch))
        n_batches = (len(order) + batch_size - 1) // batch_size
        loss_sum, correct, seen = 0.0, 0, 0
        t0 = time.perf_counter()
        bar = tqdm(_batches(train_ds, batch_size, order), total=n_batches, unit="batch",
                   desc=f"epoch {epoch + 1}/{cfg.epochs}{' qat' if qat_now else ''}",
                   disable=None if show else True, leave=False)
        for b, (x, y) in enumerate(bar):
            if on_batch is not None:
                on_batch(epoch, b)
            n = len(y)
            # the whole global batch is augmented alike in every process, then each takes its share
            x, target = augment(x, y, data.num_classes, recipe.augmentation, batch_rng(cfg.seed, epoch, b),
                                speech=data.speech)
            part = world.share(n)
            x, y, target = x[part].to(world.device), y[part].to(world.device), target[part].to(world.device)
            logits = step_model(x)
            share_loss = _loss(recipe.loss, logits, y, target)
            # DDP averages gradients over the processes: scaled so that the mean is the gradient
            # of the global batch's mean loss
            loss = share_loss * (world.size / n)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(share_loss.detach())
            correct += int((logits.detach().argmax(1) == y).sum())
            seen += len(y)
            if show:
                bar.set_postfix(loss=f"{loss_sum / max(seen, 1):.4f}", acc=f"{correct / max(seen, 1):.3f}")
        bar.close()
        loss_sum, correct, seen = world.sum([loss_sum, correct, seen])
        lr_used = optimizer.param_groups[0]["lr"]
        scheduler.step()
        val = evaluate(model, val_ds, cfg.eval_batch_size, world)
        row = {"epoch": epoch + 1, "qat": qat_now, "lr": lr_used, "train_loss": loss_sum / max(seen, 1),
               "train_accuracy": correct / max(seen, 1), "val_loss": val["loss"], "val_accuracy": val["accuracy"],
               "seconds": time.perf_counter() - t0}
        history["epochs"].append(row)
        final_mode = qat_now == qat
        best = history["best"]
        improved = final_mode and (best is None or row["val_accuracy"] > best["val_accuracy"])
        if improved:
            history["best"] = {"epoch": epoch + 1, "val_accuracy": row["val_accuracy"]}
        if world.main:
            if improved:
                save_checkpoint(best_path, model, model_config, dataset=dataset_record, epoch=epoch + 1,
                                metrics=row, optimizer=None, rng=None, qat=qat_now, **extra)
            save_checkpoint(last_path, model, model_config, dataset=dataset_record, epoch=epoch + 1,
                            metrics=history, optimizer=_to_cpu(optimizer.state_dict()), rng=_rng_state(),
                            qat=qat_now, scheduler=scheduler.state_dict(), train=record, **extra)
            write_json(metrics_path, history)
        if show:
            tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f} "
                       f"acc {row['train_accuracy']:.4f}, val acc {row['val_accuracy']:.4f}"
                       f"{' (qat)' if qat_now else ''}")
        world.barrier()  # the others wait for rank 0's files before the next epoch (or the test)

    if world.main:
        history["test"] = test_metrics(best_path if best_path.is_file() else last_path, test_ds, cfg)
        write_json(metrics_path, history)
    world.barrier()
    if not world.main:
        history = read_metrics(metrics_path)  # every process returns what rank 0 wrote
    return history


def _to_cpu(value):
    """An optimizer state with every tensor on the CPU, so a checkpoint loads on any machine."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value


def test_metrics(ckpt_path: Path, test_ds: Dataset, cfg: TrainConfig) -> dict:
    """Test-set figures of the checkpoint at `ckpt_path` (best.pt): accuracy of the model as
    trained (fake quantization on for QAT), accuracy by frames seen (causal models), and for
    spiking models the integer-mode accuracy of the deployed network, overall and by frames.
    Runs on the CPU: the integer executor is exact in int64 there, and this is once per run."""
    from lmu2neuro.training.checkpoint import model_from_checkpoint

    model, ckpt = model_from_checkpoint(ckpt_path)
    result = {"checkpoint": ckpt_path.name, "epoch": ckpt["epoch"], "samples": len(test_ds), "qat": ckpt["qat"]}
    result.update(evaluate(model, test_ds, cfg.eval_batch_size))
    if ckpt["qat"]:  # what the float model (fake quantization off) scores, for comparison
        model.set_qat(False)
        result["accuracy_without_fake_quant"] = evaluate(model, test_ds, cfg.eval_batch_size)["accuracy"]
        model.set_qat(True)
    loader = DataLoader(test_ds, batch_size=cfg.eval_batch_size, shuffle=False)
    if ckpt["model_config"].get("causal", True):
        from lmu2neuro.training.evaluate import accuracy_by_frames

        if ckpt.get("user_model") is None:  # accuracy_by_frames reads a preset's config
            result["accuracy_by_frames"] = [float(a) for a in accuracy_by_frames(model, loader)]
        else:  # a traced model is causal: its running mean after t frames saw frames 1..t only
            with torch.no_grad():
                hits = sum((model.per_step_logits(x).argmax(-1) == y[:, None]).sum(0).double()
                           for x, y in _batches(test_ds, cfg.eval_batch_size))
            result["accuracy_by_frames"] = [float(h) / max(len(test_ds), 1) for h in hits]
        if ckpt["model_config"].get("spiking", cfg.spiking):
            result["integer_accuracy"] = integer_accuracy(model, test_ds, cfg.eval_batch_size)
            result["integer_accuracy_by_frames"] = [float(a) for a in accuracy_by_frames(model, loader, integer=True)]
    return result


def read_metrics(path) -> dict:
    """metrics.json of a run as a dict; UserError if it is missing or not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: metrics file not found; expected the metrics.json of a training run") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); expected metrics.json") from None
