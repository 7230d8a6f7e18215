"""Several training processes, one model replica each (data parallel), through Hugging Face Accelerate.

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

Only data parallelism is supported: an accelerate config that asks for FSDP, DeepSpeed or Megatron-LM is refused (the
trained sets are adapters that fit on one GPU beside the frozen UNet, and checkpoints are read from the process's own
full copy of the trained tensors). Mixed precision is the trainer's own bf16 autocast (``--mixed-precision``, which
defaults to what ``accelerate launch`` was given); fp16 is refused (it needs loss scaling, which this trainer does
not do).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..data.errors import InvalidInputError, TrackDiffusionError

SOURCE = "trackdiffusion train (several processes)"
#: where launchers put the number of processes (torchrun / accelerate launch; MPI launchers)
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_VARIABLES = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
#: accelerate launch's settings this trainer reads (the launcher exports them for the processes it starts)
LAUNCHER_MIXED_PRECISION = "ACCELERATE_MIXED_PRECISION"
UNSUPPORTED_LAUNCHES = {"ACCELERATE_USE_FSDP": "FSDP", "ACCELERATE_USE_DEEPSPEED": "DeepSpeed",
                        "ACCELERATE_USE_MEGATRON_LM": "Megatron-LM"}
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


def refuse_unsupported_launch() -> None:
    for variable, name in UNSUPPORTED_LAUNCHES.items():
        if os.environ.get(variable, "").strip().lower() in ("1", "true", "yes"):
            raise InvalidInputError(
                f"the accelerate config asks for {name}, which trackdiffusion train does not support (it trains data "
                "parallel: one full copy of the trained tensors per process).",
                fix="launch with a multi-GPU (DDP) config: accelerate launch --multi_gpu --num_processes N ...",
                source=SOURCE)


class SingleProcess:
    """The one process of a plain run: nothing to share."""

    count = 1
    index = 0
    is_main = True

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        return module

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

    def __init__(self, device: torch.device, timeout_seconds: float | None = None) -> None:
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
        self.accelerator = Accelerator(cpu=torch.device(device).type == "cpu", mixed_precision="no",
                                       kwargs_handlers=handlers)
        data_parallel = {DistributedType.MULTI_GPU, DistributedType.MULTI_CPU, DistributedType.NO}
        data_parallel |= {getattr(DistributedType, n) for n in ("MULTI_XPU", "MULTI_NPU", "MULTI_MLU", "MULTI_SDAA",
                                                                "MULTI_MUSA", "MULTI_HPU") if hasattr(DistributedType, n)}
        if self.accelerator.distributed_type not in data_parallel:
            raise InvalidInputError(f"accelerate set up {self.accelerator.distributed_type}, which trackdiffusion "
                                    "train does not support.", fix="launch with a multi-GPU (DDP) config.",
                                    source=SOURCE)
        self.count = int(self.accelerator.num_processes)
        self.index = int(self.accelerator.process_index)
        self.is_main = bool(self.accelerator.is_main_process)
        self.device = self.accelerator.device

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` in DistributedDataParallel: its trained parameters start equal on every process (rank 0's are
        broadcast) and their gradients are averaged over the processes during backward."""
        return self.accelerator.prepare_model(module, device_placement=False)

    def gradient_sync(self, module: torch.nn.Module, sync: bool) -> contextlib.AbstractContextManager:
        """Backward without the all-reduce for every micro-batch but a step's last (the gradients add up locally)."""
        return contextlib.nullcontext() if sync else self.accelerator.no_sync(module)

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
        return f"{self.count} processes ({self.accelerator.distributed_type.value}, {self.device.type})"


def training_processes(device: str | torch.device, timeout_seconds: float | None = None
                       ) -> SingleProcess | AcceleratedProcesses:
    """This process's place in the run: alone (a plain command; Accelerate is not imported) or one of those a launcher
    started."""
    refuse_unsupported_launch()
    if launched_processes() == 1:
        return SingleProcess(torch.device(device))
    return AcceleratedProcesses(torch.device(device), timeout_seconds)


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
