"""Several training processes, data parallel or sharded (FSDP), through Hugging Face Accelerate.

``accelerate launch --multi_gpu --num_processes N -m trackdiffusion train ...`` (or ``torchrun``) starts N copies of
the command; each finds its place here (:func:`training_processes`). A plain ``trackdiffusion train`` is one process
and never imports Accelerate (it is the optional extra ``trackdiffusion[multi-gpu]``).

How a step is shared (see :mod:`.train`): ``--batch`` is the *global* batch, the clips of one optimizer step. It is
split into ``processes x --gradient-accumulation`` equal micro-batches; process ``r`` takes rows
``r * A * m .. (r + 1) * A * m`` of the step's batch (``m`` clips per micro-batch, ``A`` micro-batches), and every
clip, noise and dropout draw is made from ``(seed, step, row)`` as the single process would have made it. The
gradients of one step are averaged over every micro-batch of every process (DistributedDataParallel averages over the
processes, each process divides its loss by ``A``), which is the single-process gradient of the mean loss over the
global batch: the same ``--batch`` and ``--seed`` give the same loss curve whatever the number of processes (up to
float rounding: sums taken in another order).

Sharded training (FSDP): when the accelerate config asks for FSDP (``accelerate launch --use_fsdp``, which exports
``ACCELERATE_USE_FSDP`` and the ``FSDP_*`` settings), the trained tensors are sharded over the processes with torch's
``fully_shard`` (FSDP2, per-parameter sharding; :class:`Sharding`): each process keeps 1/N of every trained tensor,
of its gradient and of its AdamW state, and gathers the full tensors only while a step computes (the frozen UNet
stays a full copy in every process, it holds no gradients or optimizer state; so do the few 0-dim trained tensors,
which ``fully_shard`` cannot split, their gradients averaged as DDP would). FSDP version 1 and 2 configs run the same
way (``FULL_SHARD`` = a unit's gathered tensors are freed after its forward pass and gathered again for its backward
pass, ``SHARD_GRAD_OP`` = kept until its backward pass; the units are :meth:`.trainer.Trainer._shard`'s); ``NO_SHARD``,
the hybrid strategies, parameter offload and FSDP's activation checkpointing are refused. The step is the same (the
gradients are reduce-scattered instead of all-reduced), gradient clipping takes the norm over every shard, and
checkpoints hold the full tensors gathered to the main process in the single-process format, so a run resumes with
or without FSDP and with any number of processes. DeepSpeed and Megatron-LM are refused (:data:`UNSUPPORTED_LAUNCHES`).

Mixed precision is the trainer's own bf16 autocast (``--mixed-precision``, which defaults to what ``accelerate
launch`` was given); fp16 is refused (it needs loss scaling, which this trainer does not do).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ..data.errors import InvalidInputError, TrackDiffusionError

SOURCE = "trackdiffusion train (several processes)"
#: where launchers put the number of processes (torchrun / accelerate launch; MPI launchers)
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_VARIABLES = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
#: accelerate launch's settings this trainer reads (the launcher exports them for the processes it starts)
LAUNCHER_MIXED_PRECISION = "ACCELERATE_MIXED_PRECISION"
LAUNCHER_FSDP = "ACCELERATE_USE_FSDP"
FSDP_STRATEGIES = ("FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD", "HYBRID_SHARD_ZERO2")  #: FSDP1's, 1..5
#: why an accelerate config asking for these is refused (problem, fix)
UNSUPPORTED_LAUNCHES = {
    "ACCELERATE_USE_DEEPSPEED": (
        ("DeepSpeed, which trackdiffusion train does not support (its engine would take over the backward pass, the "
         "optimizer step and the checkpoints, which this trainer keeps in one form for every launch)"),
        ("for ZeRO-3-style sharding of the trained tensors, their gradients and optimizer state use FSDP: accelerate "
         "launch --use_fsdp --num_processes N ... (distributed_type: FSDP in the accelerate config)")),
    "ACCELERATE_USE_MEGATRON_LM": (
        ("Megatron-LM, which trackdiffusion train does not support (it splits layers into tensor and pipeline "
         "parallel parts; this trainer shards whole tensors)"),
        "launch with FSDP (accelerate launch --use_fsdp --num_processes N ...) or data parallel (--multi_gpu)."),
}
#: set once a process has found that another one is gone: the SIGTERM the launcher then sends must not turn the
#: one-line report being printed into a KeyboardInterrupt traceback (training.cli reads it)
stopping = threading.Event()


class TrainingProcessLost(TrackDiffusionError):
    """Another process of a multi-process run stopped (killed, crashed, or silent past the timeout)."""


def _first_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return default


def launched_processes() -> int:
    """How many processes the launcher started (1 when this command was not launched as one of several)."""
    return max(1, _first_int(WORLD_SIZE_VARIABLES, 1))


def launched_rank() -> int:
    """This process's index among them (0 when alone); readable before any process group exists."""
    return _first_int(RANK_VARIABLES, 0)


def launcher_mixed_precision() -> str | None:
    """The mixed precision ``accelerate launch`` was given (``--mixed_precision`` or its config), if any."""
    value = os.environ.get(LAUNCHER_MIXED_PRECISION, "").strip().lower()
    return value or None


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def refuse_unsupported_launch() -> None:
    for variable, (problem, fix) in UNSUPPORTED_LAUNCHES.items():
        if _flag(variable):
            raise InvalidInputError(f"the accelerate config asks for {problem}.", fix=fix, source=SOURCE)


@dataclass(frozen=True)
class Sharding:
    """How the trained tensors are sharded (FSDP), from the settings ``accelerate launch --use_fsdp`` exports.

    ``reshard_after_forward``: a unit's gathered tensors are freed after its forward pass and gathered again for the
    backward pass (``FULL_SHARD``; FSDP2's default), or kept until its backward pass is done (``SHARD_GRAD_OP``).
    ``asked``: what the config asked for, as said in the run's messages."""

    reshard_after_forward: bool = True
    asked: str = "FSDP2"


@contextlib.contextmanager
def _unset(name: str) -> Iterator[None]:
    """Environment variable ``name`` absent inside (as it was afterwards)."""
    value = os.environ.pop(name, None)
    try:
        yield
    finally:
        if value is not None:
            os.environ[name] = value


def _refuse_sharding(problem: str, fix: str) -> InvalidInputError:
    return InvalidInputError(f"the accelerate config asks for {problem}.", fix=fix, source=SOURCE)


def launched_sharding() -> Sharding | None:
    """The FSDP settings ``accelerate launch`` was given (None when it was not asked for FSDP); refuses those this
    trainer cannot honour, with one line saying what to change."""
    if not _flag(LAUNCHER_FSDP):
        return None
    version = os.environ.get("FSDP_VERSION", "1").strip() or "1"
    if version not in ("1", "2"):
        raise _refuse_sharding(f"FSDP version {version!r}", "use fsdp_version 1 or 2.")
    if _flag("FSDP_OFFLOAD_PARAMS"):
        raise _refuse_sharding("FSDP parameter offload (fsdp_offload_params), which trackdiffusion train does not "
                               "support", "set fsdp_offload_params to false: the trained tensors, their gradients and "
                               "optimizer state are sharded over the processes already.")
    if _flag("FSDP_ACTIVATION_CHECKPOINTING"):
        raise _refuse_sharding("FSDP activation checkpointing (fsdp_activation_checkpointing), which trackdiffusion "
                               "train does its own way", "set fsdp_activation_checkpointing to false and pass "
                               "--gradient-checkpointing.")
    if version == "2":
        value = os.environ.get("FSDP_RESHARD_AFTER_FORWARD", "true").strip().lower() or "true"
        if value not in ("true", "false", "1", "0", "yes", "no"):
            raise _refuse_sharding(f"fsdp_reshard_after_forward {value!r} with FSDP version 2",
                                   "use true or false (FULL_SHARD / SHARD_GRAD_OP are version 1's names).")
        reshard = value in ("true", "1", "yes")
        return Sharding(reshard, f"FSDP2, reshard after forward {'on' if reshard else 'off'}")
    # version 1: its sharding strategy (by name or number, as Accelerate takes it); a strategy name may also come
    # in fsdp_reshard_after_forward (Accelerate's newer spelling of the same setting)
    strategy = os.environ.get("FSDP_SHARDING_STRATEGY", "").strip().upper()
    if not strategy:
        fallback = os.environ.get("FSDP_RESHARD_AFTER_FORWARD", "").strip().upper()
        strategy = fallback if fallback in FSDP_STRATEGIES or fallback.isdigit() else "FULL_SHARD"
    if strategy.isdigit() and 1 <= int(strategy) <= len(FSDP_STRATEGIES):
        strategy = FSDP_STRATEGIES[int(strategy) - 1]
    if strategy == "NO_SHARD":
        raise _refuse_sharding("FSDP with sharding strategy NO_SHARD (plain data parallel)",
                               "launch with --multi_gpu (DDP), or choose FULL_SHARD or SHARD_GRAD_OP.")
    if strategy not in ("FULL_SHARD", "SHARD_GRAD_OP"):
        raise _refuse_sharding(f"FSDP with sharding strategy {strategy}, which trackdiffusion train does not "
                               "support (hybrid sharding is untested here)", "choose FULL_SHARD or SHARD_GRAD_OP.")
    return Sharding(strategy == "FULL_SHARD", f"FSDP1 {strategy}, run as FSDP2")


class SingleProcess:
    """The one process of a plain run: nothing to share."""

    count = 1
    index = 0
    is_main = True
    sharding = None

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)

    def wrap(self, module: torch.nn.Module, trained: Iterable[torch.nn.Parameter] = (),
             units: Iterable[torch.nn.Module] = ()) -> torch.nn.Module:
        return module

    def gather(self, module: torch.nn.Module) -> None:
        pass

    def gradient_sync(self, module: torch.nn.Module, sync: bool) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        return values

    def from_main(self, value: Any) -> Any:
        return value

    def wait_for_everyone(self) -> None:
        pass

    def describe(self) -> str:
        return "1 process"


class AcceleratedProcesses:
    """One of several processes started by ``accelerate launch`` (or ``torchrun``): an ``accelerate.Accelerator``
    joins them into a process group (NCCL between GPUs, gloo on CPUs)."""

    def __init__(self, device: torch.device, timeout_seconds: float | None = None,
                 sharding: Sharding | None = None) -> None:
        try:
            from accelerate import Accelerator
            from accelerate.utils import DistributedType, InitProcessGroupKwargs
        except ImportError:
            raise InvalidInputError(
                f"this command was launched as one of {launched_processes()} processes, but Hugging Face Accelerate "
                "is not installed.", fix="pip install 'trackdiffusion[multi-gpu]' (or accelerate), or run one "
                "process.", source=SOURCE) from None
        handlers = []
        if timeout_seconds is not None:
            handlers.append(InitProcessGroupKwargs(timeout=datetime.timedelta(seconds=float(timeout_seconds))))
        # mixed precision stays ours (Trainer._autocast): Accelerate's own would wrap the forward a second time and,
        # for fp16, expect its gradient scaler
        # sharded, the sharding is ours (wrap): Accelerate is not told, or it would build its own FSDP plugin from
        # the launch settings, for a wrapping it does not do, and refuse some of them on CPUs (sync_module_states,
        # which accelerate launch --use_fsdp turns on by default)
        with _unset(LAUNCHER_FSDP) if sharding is not None else contextlib.nullcontext():
            self.accelerator = Accelerator(cpu=torch.device(device).type == "cpu", mixed_precision="no",
                                           kwargs_handlers=handlers)
        data_parallel = {DistributedType.MULTI_GPU, DistributedType.MULTI_CPU, DistributedType.NO}
        data_parallel |= {getattr(DistributedType, n) for n in ("MULTI_XPU", "MULTI_NPU", "MULTI_MLU", "MULTI_SDAA",
                                                                "MULTI_MUSA", "MULTI_HPU") if hasattr(DistributedType, n)}
        if self.accelerator.distributed_type not in data_parallel:
            raise InvalidInputError(f"accelerate set up {self.accelerator.distributed_type}, which trackdiffusion "
                                    "train does not support.", fix="launch with a multi-GPU (DDP) or FSDP config.",
                                    source=SOURCE)
        self.sharding = sharding
        self.count = int(self.accelerator.num_processes)
        self.index = int(self.accelerator.process_index)
        self.is_main = bool(self.accelerator.is_main_process)
        self.device = self.accelerator.device

    def wrap(self, module: torch.nn.Module, trained: Iterable[torch.nn.Parameter] = (),
             units: Iterable[torch.nn.Module] = ()) -> torch.nn.Module:
        """``module`` made ready to train in every process, starting from the main process's tensors (they are
        broadcast). Data parallel: in DistributedDataParallel, whose backward averages the gradients over the
        processes. Sharded: ``trained`` (the rest of ``module``'s parameters are frozen and stay whole) sharded over
        the processes with ``fully_shard``, each module of ``units`` (those of ``module`` whose parameters are all
        trained) as a unit of its own, gathered when it runs, the rest of ``trained`` as ``module``'s unit. The
        parameters are replaced by their shards (DTensors): read them from ``module`` again, and build the optimizer
        after this."""
        if self.sharding is None:
            return self.accelerator.prepare_model(module, device_placement=False)
        import torch.distributed as dist
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        with torch.no_grad():  # as DistributedDataParallel does: every process starts from the main one's tensors
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, src=0)
        mesh = init_device_mesh(self.device.type, (self.count,))
        # FSDP2 warns that a unit (a UNet block) returns a view, in case an in-place op on it follows: the UNet's
        # forward only passes block outputs on (tuple concatenation, torch.cat), so the warning says nothing here
        warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
        # the frozen tensors stay whole, and so do the 0-dim trained ones (fully_shard splits dimension 0; their
        # gradients are averaged by average_whole_gradients)
        sharded = {id(p) for p in trained if p.dim() > 0}
        whole = {p for p in module.parameters() if id(p) not in sharded}
        for unit in units:
            fully_shard(unit, mesh=mesh, reshard_after_forward=self.sharding.reshard_after_forward,
                        ignored_params=whole & set(unit.parameters()) or None)
        fully_shard(module, mesh=mesh, reshard_after_forward=self.sharding.reshard_after_forward,
                    ignored_params=whole or None)
        return module

    def average_whole_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Sharded, after a step's backward passes: average the gradients of the trained tensors kept whole (the 0-dim
        ones, :meth:`wrap`) over the processes, as DistributedDataParallel would (the sharded ones were
        reduce-scattered by the backward pass)."""
        import torch.distributed as dist

        for p in parameters:
            if _is_shard(p):
                continue
            grad = p.grad if p.grad is not None else torch.zeros_like(p)
            dist.all_reduce(grad)
            p.grad = grad.div_(self.count)

    def clip_gradients(self, parameters: Iterable[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
        """Sharded: scale the gradients so that their norm is at most ``max_norm``, as ``clip_grad_norm_`` does in
        one process, with the norm of the whole gradient: every process's shards and the tensors kept whole."""
        from torch.nn.utils import clip_grads_with_norm_, get_total_norm

        parameters = [p for p in parameters if p.grad is not None]
        sharded = [p for p in parameters if _is_shard(p)]
        whole = [p for p in parameters if not _is_shard(p)]
        norms = []
        if sharded:
            norm = get_total_norm([p.grad for p in sharded])
            norms.append(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # over every shard
        if whole:
            norms.append(get_total_norm([p.grad for p in whole]).to(norms[0].device if norms else self.device))
        if not norms:
            return torch.zeros((), device=self.device)
        total = torch.linalg.vector_norm(torch.stack(norms))
        for group in (sharded, whole):
            if group:
                clip_grads_with_norm_(group, max_norm, total)
        return total

    def gather(self, module: torch.nn.Module) -> None:
        """Sharded: gather ``module``'s own unit now, before its forward pass, for code that uses those tensors
        before it (the position net, in Trainer._conditioned); they are freed after the backward pass. Data
        parallel: nothing to do."""
        if self.sharding is not None:
            module.unshard()

    def gradient_sync(self, module: torch.nn.Module, sync: bool) -> contextlib.AbstractContextManager:
        """Data parallel: backward without the all-reduce for every micro-batch but a step's last (the gradients add
        up locally). Sharded: every backward reduce-scatters into the gradient shards, where they add up (no full
        gradient is kept between micro-batches)."""
        if sync or self.sharding is not None:
            return contextlib.nullcontext()
        return self.accelerator.no_sync(module)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The mean of each value over the processes (every process gets the same numbers)."""
        keys = list(values)
        local = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
        total = self.accelerator.reduce(local, reduction="mean")
        return {k: float(v) for k, v in zip(keys, total.tolist(), strict=True)}

    def from_main(self, value: Any) -> Any:
        """The main process's ``value`` (picklable), on every process."""
        from accelerate.utils import broadcast_object_list

        box = [value]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def wait_for_everyone(self) -> None:
        self.accelerator.wait_for_everyone()

    def describe(self) -> str:
        if self.sharding is not None:
            return f"{self.count} processes (sharded: {self.sharding.asked}; {self.device.type})"
        return f"{self.count} processes ({self.accelerator.distributed_type.value}, {self.device.type})"


def _is_shard(p: torch.Tensor) -> bool:
    return hasattr(p, "to_local")  # a DTensor (fully_shard's parameters)


def gathered_tensors(module: torch.nn.Module, everywhere: bool = False) -> dict[str, torch.Tensor]:
    """The full (unsharded) trained tensors of a sharded ``module`` on the CPU, keyed by parameter name in
    ``module``: torch.distributed.checkpoint's full state dict without the frozen tensors. Every process must call
    it; only the main one gets the tensors (the others an empty dict) unless ``everywhere``."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=not everywhere, ignore_frozen_params=True)
    tensors = get_model_state_dict(module, options=options)
    return {k: v.detach().cpu() for k, v in tensors.items()} if everywhere else tensors


def gathered_optimizer_state(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``optimizer``'s full state (its sharded moments gathered), keyed by parameter name in ``module``, on the CPU
    of the main process (the others get an empty dict; every process must call it)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(module, optimizer, options=options)


def load_gathered_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                        optimizer_state: dict[str, Any]) -> None:
    """Put full trained tensors and optimizer state (keyed as :func:`gathered_tensors` and
    :func:`gathered_optimizer_state` key them; every process holds them, read from the checkpoint) into a sharded
    ``module`` and its ``optimizer``: each process keeps its shards."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    set_model_state_dict(module, tensors, options=StateDictOptions(full_state_dict=True, strict=False))  # no frozen
    set_optimizer_state_dict(module, optimizer, optimizer_state, options=StateDictOptions(full_state_dict=True))


@contextlib.contextmanager
def whole_parameters(module: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> Iterator[None]:
    """Inside, the sharded parameters of ``module`` named in ``tensors`` are those full tensors (plain, on the CPU),
    so code that reads the modules (the adapter export) sees whole tensors; the shards are back afterwards. Local to
    this process (no collective): the main process exports what :func:`gathered_tensors` gave it."""
    from torch.distributed.fsdp import FSDPModule

    for unit in module.modules():  # every unit at rest: its sharded parameters registered, nothing gathered
        if isinstance(unit, FSDPModule):
            unit.reshard()
    swapped = []
    try:
        for name, tensor in tensors.items():
            owner_name, _, attr = name.rpartition(".")
            owner = module.get_submodule(owner_name)
            swapped.append((owner, attr, owner._parameters[attr]))
            owner._parameters[attr] = torch.nn.Parameter(tensor, requires_grad=False)
        yield
    finally:
        for owner, attr, parameter in reversed(swapped):
            owner._parameters[attr] = parameter


def training_processes(device: str | torch.device, timeout_seconds: float | None = None
                       ) -> SingleProcess | AcceleratedProcesses:
    """This process's place in the run: alone (a plain command; Accelerate is not imported) or one of those a launcher
    started (sharding the trained tensors when the accelerate config asks for FSDP)."""
    refuse_unsupported_launch()
    if launched_processes() == 1:  # FSDP over one process is that process
        return SingleProcess(torch.device(device))
    return AcceleratedProcesses(torch.device(device), timeout_seconds, launched_sharding())


def is_lost_process_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective operation failing because another process is gone or silent (the
    DistributedDataParallel all-reduce inside backward, a broadcast, a barrier)."""
    dist_error = getattr(torch.distributed, "DistError", None)
    if dist_error is not None and isinstance(exc, dist_error):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(k in text for k in (
        "gloo", "nccl", "connection closed", "connection reset", "broken pipe", "timed out", "socket timeout"))


@contextlib.contextmanager
def reporting_lost_processes(processes: SingleProcess | AcceleratedProcesses, where: Callable[[], str]
                             ) -> Iterator[None]:
    """Turn a collective failure into :class:`TrainingProcessLost` with one line saying what happened; ``where()``
    says at which step and what the last checkpoint is."""
    try:
        yield
    except RuntimeError as exc:
        if processes.count == 1 or not is_lost_process_error(exc):
            raise
        stopping.set()
        raise TrainingProcessLost(f"process {processes.index} of {processes.count}: another training process stopped "
                                  f"or stopped answering ({_short_reason(exc)}); {where()}") from None


def _short_reason(exc: BaseException) -> str:
    """The gist of a collective's error (gloo and NCCL messages run over several sentences and source paths)."""
    text = " ".join(str(exc).split())
    found = re.search(r"connection (?:reset|closed) by peer|broken pipe|timed out|timeout|watchdog", text, re.IGNORECASE)
    if found:
        return found.group(0).lower()
    text = re.sub(r"\[[^\]]*\]\s*", "", text)  # "[../third_party/gloo/...cc:534]"
    return text[:120] or type(exc).__name__
