"""Checkpoints, the loss log and the exported adapter files of ``trackdiffusion train``.

Checkpoints: ``OUT/checkpoints/step-<8 digits>.pt`` (``torch.save`` of a dict of tensors and plain values, read
back with ``weights_only=True``): the trainable parameters by name, the optimizer, the LR schedule, the torch RNG
states, the step, the run configuration and a description of the base UNet. Every file is written to a temporary
file in the same folder, fsynced and renamed into place, so a crash or a kill at any moment leaves the previous
checkpoints intact (a stale ``.tmp`` is removed on the next start); only the newest :data:`KEEP` are kept.

Exports (what the ComfyUI nodes load), rewritten atomically at every checkpoint:

* TrackDiffusion-SVD: a delta in our converted naming (:mod:`trackdiffusion.models.checkpoints.convert`): the fusers and
  ``position_net`` through :meth:`~trackdiffusion.models.svd.adapter.TrackDiffusionSVDAdapter.delta_state_dict`,
  plus ``diffusion_model.<ComfyUI name>`` for conv_in, conv_out and the ``time_mixer.mix_factor`` scalars; metadata
  ``format`` ``trackdiffusion.svd_delta``, ``version`` ``1``, ``base``, ``stage``, ``head_dim``, ``trained_steps``,
  ``source``. The ComfyUI names are derived from the UNet's own block structure (:func:`trackdiffusion.models.svd.naming.module_names`), which
  for the real SVD is exactly :mod:`trackdiffusion.models.svd.naming`.
* TrackGo: :func:`trackdiffusion.models.trackgo.diffusers.adapter_file` (``format``, ``config``, ``trained_steps``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from ..data.atomic import atomic_write
from ..data.errors import InvalidInputError
from ..models.svd.naming import longest_module_prefix, module_names

SOURCE = "trackdiffusion train checkpoints"
CHECKPOINT_FORMAT = "trackdiffusion.train_checkpoint"
CHECKPOINT_VERSION = 1
KEEP = 3
CHECKPOINT_DIR = "checkpoints"
LOSS_LOG = "loss.csv"
_NAME = re.compile(r"^step-(\d{8})\.pt$")


# --------------------------------------------------------------------------------------------------- atomic files


def write_safetensors(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> Path:
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=dict(metadata))
    return atomic_write(path, lambda fh: fh.write(data))


@contextlib.contextmanager
def run_lock(out: str | Path) -> Iterator[None]:
    """Hold ``OUT/.lock`` (an advisory ``flock``) so two runs never write into one folder at once.

    The lock dies with the process, so a killed run never leaves the folder locked. No-op where ``fcntl`` is missing.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; nothing to hold
        yield
        return
    path = Path(out) / ".lock"
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InvalidInputError("another training run is using this folder right now.",
                                    fix="wait for it to finish, or choose another --out.", source=str(out)) from None
        yield


# --------------------------------------------------------------------------------------------------- checkpoints


def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / CHECKPOINT_DIR


def checkpoint_path(out: str | Path, step: int) -> Path:
    return checkpoint_dir(out) / f"step-{int(step):08d}.pt"


def list_checkpoints(out: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints in ``out``, oldest first."""
    folder = checkpoint_dir(out)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def remove_stale_temporaries(out: str | Path) -> list[Path]:
    """Delete temporary files a killed run left in the checkpoint folder (never a finished checkpoint)."""
    folder = checkpoint_dir(out)
    removed = []
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def save_checkpoint(out: str | Path, state: Mapping[str, Any], keep: int = KEEP) -> Path:
    """Write ``state`` (with ``state["step"]``) as the step's checkpoint, then keep only the newest ``keep``.

    Checkpoints of later steps than this one (left by a run that was resumed from an older one) are removed too.
    """
    step = int(state["step"])
    body = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    path = atomic_write(checkpoint_path(out, step), lambda fh: torch.save(body, fh))
    existing = list_checkpoints(out)
    older = [p for s, p in existing if s <= step]
    stale = [p for s, p in existing if s > step]
    for p in older[:-keep] + stale if keep > 0 else stale:
        p.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's dict (tensors on the CPU); InvalidInputError when it is not a readable checkpoint."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (pickle/zip/IO errors of every kind: the file is unusable)
        raise InvalidInputError(f"not a readable training checkpoint ({type(exc).__name__}: {str(exc)[:200]}).",
                                fix="delete it to resume from the previous one.", source=str(path)) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InvalidInputError("not a trackdiffusion training checkpoint.", source=str(path))
    if state.get("version") != CHECKPOINT_VERSION:
        raise InvalidInputError(f"checkpoint version {state.get('version')!r}; this pack reads "
                                f"{CHECKPOINT_VERSION}.", fix="resume it with the pack version that wrote it.",
                                source=str(path))
    return state


def latest_checkpoint(out: str | Path, warn: Callable[[str], None] | None = None
                      ) -> tuple[dict[str, Any], Path] | None:
    """The newest readable checkpoint of ``out`` (an unreadable one is reported and skipped), or None when there is
    none at all. Raises InvalidInputError when checkpoints exist but none can be read (never a silent fresh start).
    """
    found = list_checkpoints(out)
    errors = []
    for _, path in reversed(found):
        try:
            return load_checkpoint(path), path
        except InvalidInputError as exc:
            errors.append(str(exc))
            if warn is not None:
                warn(f"skipping {path.name}: {exc}")
    if found:
        raise InvalidInputError(f"none of the {len(found)} checkpoints can be read: " + " | ".join(errors[:3]),
                                fix="move the checkpoints/ folder away to start afresh.", source=str(out))
    return None


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``"name: checkpoint X, now Y"`` for every setting that differs."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if a != b:
            out.append(f"{key}: checkpoint {a!r}, now {b!r}")
    return out


# --------------------------------------------------------------------------------------------------- loss log


class LossLog:
    """``OUT/loss.csv``: one row per step, appended and flushed as training goes."""

    def __init__(self, path: str | Path, fields: Iterable[str]) -> None:
        self.path = Path(path)
        self.fields = ["step", *[f for f in fields if f != "step"]]

    def truncate(self, step: int) -> None:
        """Keep the rows up to ``step`` (the steps after the resumed checkpoint are redone)."""
        rows = self.rows()
        kept = [r for r in rows if int(float(r.get("step", 0))) <= step]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self.fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        data = text.getvalue().encode("utf-8")
        atomic_write(self.path, lambda fh: fh.write(data))

    def rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="", encoding="utf-8") as fh:
            return [r for r in csv.DictReader(fh) if r.get("step")]

    def append(self, row: Mapping[str, Any]) -> None:
        new = not self.path.is_file() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore", lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


# --------------------------------------------------------------------------------------------------- naming


def _rename(key: str, names: Mapping[str, str]) -> str | None:
    module = longest_module_prefix(key, names)
    return None if module is None else names[module] + key[len(module):]


def to_comfyui(key: str, names: Mapping[str, str]) -> str:
    """A diffusers key below one of ``names``' modules -> its ComfyUI key (KeyError otherwise)."""
    out = _rename(key, names)
    if out is None:
        raise KeyError(key)
    return out


# --------------------------------------------------------------------------------------------------- exports


def svd_delta(attachment: Any, *, stage: int, trained_steps: int, base: str, source: str = "trackdiffusion train"
              ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of the SVD delta of a trained :class:`TrackDiffusionSVDAttachment` (module docstring)."""
    from ..models.checkpoints.convert import FORMAT_VERSION, SVD_DELTA_FORMAT
    from ..models.svd.adapter import DELTA_UNET_PREFIX, TrackDiffusionSVDAdapter

    unet = attachment.unet
    names = module_names(unet)
    blocks, fusers, head_dims = [], {}, set()
    for path, fuser in attachment.fusers.items():
        attention, _, rest = path.partition(".transformer_blocks.")
        if rest != "0.fuser" or attention not in names:
            raise InvalidInputError(f"the fuser at {path} cannot be named in the delta format (it holds one fuser "
                                    "per transformer, at transformer_blocks.0).",
                                    fix="train on a UNet with depth-1 spatio-temporal transformers (as SVD).",
                                    source=SOURCE)
        blocks.append((names[attention], int(fuser.query_dim)))
        fusers[names[attention]] = fuser
        head_dims.add(int(unet.get_submodule(attention).attention_head_dim))
    if len(head_dims) != 1:
        raise InvalidInputError(f"the transformers use different head sizes {sorted(head_dims)}; the delta format "
                                "stores one head_dim.", fix="use a UNet with one attention head size.", source=SOURCE)
    head_dim = head_dims.pop()
    ref = next(attachment.position_net.parameters())
    adapter = TrackDiffusionSVDAdapter(blocks, context_dim=int(attachment.position_net.out_dim), head_dim=head_dim,
                                       max_objs=attachment.max_objs,
                                       hidden_dim=int(attachment.position_net.linears[0].weight.shape[0]),
                                       device="cpu", dtype=ref.dtype)
    with torch.no_grad():
        adapter.position_net.load_state_dict(attachment.position_net.state_dict())
        for name, fuser in fusers.items():
            adapter.fusers[name.replace(".", "_")].load_state_dict(fuser.state_dict())
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in adapter.delta_state_dict().items()}
    for key, param in attachment.named_trainable_parameters(stage):
        if ".fuser." in key or key.startswith("position_net."):
            continue
        tensors[DELTA_UNET_PREFIX + to_comfyui(key, names)] = param.detach().float().cpu().contiguous()
    metadata = {"format": SVD_DELTA_FORMAT, "version": FORMAT_VERSION, "base": base, "stage": str(int(stage)),
                "head_dim": str(head_dim), "trained_steps": str(int(trained_steps)), "source": source}
    return dict(sorted(tensors.items())), metadata


def delta_to_diffusers(tensors: Mapping[str, torch.Tensor], unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our delta naming (``diffusion_model.<ComfyUI>`` + ``position_net.*``) -> diffusers keys of ``unet``'s layout."""
    from ..models.svd.adapter import DELTA_UNET_PREFIX

    inverse = {v: k for k, v in module_names(unet).items()}
    out = {}
    for key, value in tensors.items():
        if key.startswith(DELTA_UNET_PREFIX):
            renamed = _rename(key[len(DELTA_UNET_PREFIX):], inverse)
            out[renamed if renamed is not None else key] = value
        else:
            out[key] = value
    return out
