"""Where training runs: the device, and several processes started by PyTorch's own launcher.

``torchrun --nproc_per_node N -m lmu2neuro train ...`` starts N copies of the command with
WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set; ``World.start`` reads them, joins
the process group (gloo on CPU, nccl on CUDA, one GPU per process: cuda:LOCAL_RANK) and the
training loop wraps the model in ``DistributedDataParallel``. What keeps N processes equal to one
process with the same global batch:

- every process draws the same global batch (same shuffling, same augmentation draws) and takes
  its contiguous share of it (``World.share``); the loss of a share is its sum over the global
  batch's size times N, so DDP's gradient mean is the gradient of the global batch mean;
- batch norm sees the global batch: ``GlobalBatchNorm1d`` reduces its sums over all processes
  in training (torch's SyncBatchNorm refuses CPU tensors), so statistics, running averages and
  gradients are those of the whole batch;
- metrics are sums reduced over the processes; only rank 0 writes files.
Floating-point sums then differ from one process only in their order (about 1e-7 relative).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from lmu2neuro.core.errors import UserError

ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


def resolve_device(name: str, local_rank: int = 0, distributed: bool = False) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` as a torch device; UserError when it cannot be used here."""
    text = str(name).strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if text != "cuda" and not (text.startswith("cuda:") and text[5:].isdigit()):
        raise UserError(f"--device {name}: expected cpu or cuda (or cuda:N)")
    if not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is visible to torch here "
                        f"(torch {torch.__version__}, torch.cuda.is_available() is False); use --device cpu")
    count = torch.cuda.device_count()
    if distributed:
        if text != "cuda":
            raise UserError(f"--device {name}: under torchrun each process takes cuda:LOCAL_RANK; pass --device cuda")
        index = local_rank
    else:
        index = int(text[5:]) if ":" in text else 0
    if index >= count:
        raise UserError(f"--device {name}: process needs GPU {index} but torch sees {count}; "
                        f"start at most {count} processes per node")
    return torch.device("cuda", index)


def env_world() -> tuple[int, int, int]:
    """(world size, rank, local rank) from torchrun's environment; (1, 0, 0) without it."""
    values = []
    for key in ENV:
        raw = os.environ.get(key)
        if raw is None:
            values.append(None)
            continue
        try:
            values.append(int(raw))
        except ValueError:
            raise UserError(f"environment variable {key}={raw!r}: expected an integer (set by torchrun)") from None
    size, rank, local = values
    if size is None or size <= 1:
        return 1, 0, 0
    if rank is None or not 0 <= rank < size:
        raise UserError(f"environment: WORLD_SIZE={size} but RANK={rank}; start several processes with torchrun")
    return size, rank, local if local is not None else rank


def check_launch(device: str, batch_size: int) -> tuple[int, int, int]:
    """The checks a distributed run makes before anything is written; returns ``env_world()``."""
    size, rank, local = env_world()
    if size > 1 and batch_size % size:
        raise UserError(f"--batch-size {batch_size}: torchrun started {size} processes, which do not divide "
                        f"the global batch; use a batch size that is a multiple of {size}")
    if size > 1 and not dist.is_initialized() and "MASTER_ADDR" not in os.environ:
        raise UserError(f"environment: WORLD_SIZE={size} without MASTER_ADDR; start the processes with torchrun")
    resolve_device(device, local, size > 1)
    return size, rank, local


@dataclass
class World:
    """This process's place in the run: how many share each batch, which share is ours, the device."""

    size: int
    rank: int
    device: torch.device
    bn_group: object = None  # the process group batch norm reduces over

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and shows progress."""
        return self.rank == 0

    @classmethod
    @contextlib.contextmanager
    def start(cls, device: str, batch_size: int):
        """Join torchrun's process group if there is one (leaving it at the end); yield the World."""
        size, rank, local = check_launch(device, batch_size)
        dev = resolve_device(device, local, size > 1)
        if size == 1:
            yield cls(1, 0, dev)
            return
        own = not dist.is_initialized()
        if own:
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            # rank 0 alone computes the test figures at the end while the others wait
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=timedelta(hours=6))
        try:
            # a group of its own, so that batch norm's reductions never interleave with DDP's buckets
            group = dist.new_group(backend="nccl" if dev.type == "cuda" else "gloo")
            yield cls(dist.get_world_size(), dist.get_rank(), dev, group)
        finally:
            if own and dist.is_initialized():
                dist.destroy_process_group()

    def share(self, n: int) -> slice:
        """This process's contiguous part of a global batch of n samples (sizes differ by at most 1)."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over the processes (float64)."""
        if self.size == 1:
            return [float(v) for v in values]
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's flag, on every process."""
        if self.size == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], dtype=torch.float64, device=self.device)
        dist.broadcast(t, 0)
        return bool(t.item())


# -- batch norm over the global batch ------------------------------------------------------------------
class _GlobalBatchNorm(torch.autograd.Function):
    """Batch norm in training mode with statistics over every process's share of the batch."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps, group):  # noqa: D401
        dims = [0] + list(range(2, x.ndim))
        channels = x.shape[1]
        shape = [1, channels] + [1] * (x.ndim - 2)
        xd = x.double()
        local = torch.cat([xd.sum(dims), (xd * xd).sum(dims), xd.new_tensor([x.numel() / max(channels, 1)])])
        dist.all_reduce(local, group=group)
        count = local[-1]
        mean = local[:channels] / count
        var = (local[channels:2 * channels] / count - mean * mean).clamp_min(0.0)
        invstd = torch.rsqrt(var + eps)
        xhat = ((xd - mean.view(shape)) * invstd.view(shape)).to(x.dtype)
        y = xhat * weight.view(shape) + bias.view(shape)
        ctx.save_for_backward(xhat, weight, invstd.to(x.dtype))
        ctx.dims, ctx.shape, ctx.group, ctx.count = dims, shape, group, count
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var, count

    @staticmethod
    def backward(ctx, grad_y, _m, _v, _c):
        xhat, weight, invstd = ctx.saved_tensors
        dims, shape = ctx.dims, ctx.shape
        g_bias = grad_y.sum(dims)
        g_weight = (grad_y * xhat).sum(dims)
        total = torch.cat([g_bias, g_weight]).double()
        dist.all_reduce(total, group=ctx.group)
        channels = g_bias.shape[0]
        mean_g = (total[:channels] / ctx.count).to(grad_y.dtype).view(shape)
        mean_gx = (total[channels:] / ctx.count).to(grad_y.dtype).view(shape)
        grad_x = (weight * invstd).view(shape) * (grad_y - mean_g - xhat * mean_gx)
        # this share's parameter gradients: DistributedDataParallel reduces them as any other
        return grad_x, g_weight, g_bias, None, None


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` whose training statistics cover the global batch of all processes
    (same parameters, buffers and state-dict keys); in eval mode, or alone, it is BatchNorm1d."""

    group = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.group is not None and dist.is_initialized()):
            return super().forward(x)
        self._check_input_dim(x)
        y, mean, var, count = _GlobalBatchNorm.apply(x, self.weight, self.bias, self.eps, self.group)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                unbiased = var * (count / (count - 1)).clamp_min(0) if float(count) > 1 else var
                self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
        return y


def globalize_batch_norm(module: nn.Module, group) -> nn.Module:
    """Replace every ``nn.BatchNorm1d`` inside ``module`` by a ``GlobalBatchNorm1d`` holding the same
    parameters and buffers (before the optimizer is built: the parameters are the same tensors)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm1d:
            new = GlobalBatchNorm1d(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats)
            new.weight, new.bias = child.weight, child.bias
            for key in ("running_mean", "running_var", "num_batches_tracked"):
                setattr(new, key, getattr(child, key))
            new.train(child.training)
            new.group = group
            setattr(module, name, new)
        else:
            globalize_batch_norm(child, group)
    return module
