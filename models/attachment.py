"""Run TrackDiffusion on third-party UNet implementations, without forking them: what the diffusers backends share.

* :mod:`.svd.diffusers`: attach the TrackDiffusion-SVD position net and fusers to a diffusers
  ``UNetSpatioTemporalConditionModel`` (:func:`~.svd.attach_trackdiffusion_svd`).
* :mod:`.modelscope.diffusers`: the main-branch (ModelScope) layout on a diffusers ``UNet3DConditionModel``
  (:func:`~.modelscope.build_trackdiffusion_unet3d`, :func:`~.modelscope.attach_trackdiffusion_unet3d`).

This module imports no diffusers. How an attachment works (shared by both backends, :class:`UNetAttachment`):

* The added modules are *grafted* onto the UNet instance at their official paths (``unet.position_net``,
  ``<spatial block>.fuser``, ...), so ``unet.state_dict()``, ``unet.to()`` and ``unet.named_parameters()`` see the
  official TrackDiffusion layout while attached. The same modules also form the attachment's own module tree, so
  ``attachment.state_dict()`` holds exactly the official added keys.
* The fusers run through diffusers' own GLIGEN branch of ``BasicTransformerBlock`` (``self.fuser(hidden,
  cross_attention_kwargs["gligen"]["objs"])``, right after the attn1 residual and before attn2). The spatial
  containers of the video UNets do not forward ``cross_attention_kwargs`` to that branch (the SVD one takes none at
  all; the UNet3D one also sends them to its temporal blocks, which have no fuser), so a forward-pre-hook on each
  spatial block adds ``gligen`` objs for that block only, and a pre-hook on each fuser passes ``strength``.
* Outside :meth:`UNetAttachment.conditioned` the hooks add nothing: the fusers are skipped and the UNet behaves as
  the base model (the UNet3D frame embeddings, part of the base network, stay on).
* :meth:`UNetAttachment.detach` removes every hook and grafted module (and restores UNet tensors that
  :meth:`~UNetAttachment.load_official_state_dict` overwrote), leaving the UNet bit-identical to before.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..data.errors import InvalidInputError

# --------------------------------------------------------------------------------------------------- helpers


def as_float_tensor(value: Any, name: str, source: str) -> torch.Tensor:
    """``value`` (tensor, array, nested list) as a float32 tensor, or an InvalidInputError naming ``name``."""
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else value.float()
    try:
        return torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"{name} is not a numeric array ({exc}).", fix=f"Pass {name} as a tensor.",
                                source=source) from None


def pad_slots(t: torch.Tensor, slots: int, dim: int) -> torch.Tensor:
    """Zero-pad ``t`` along ``dim`` to ``slots`` entries (padding slots get mask 0 and zero boxes)."""
    missing = slots - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t, t.new_zeros(shape)], dim=dim)


def batch_first(boxes: torch.Tensor, masks: torch.Tensor, box_dims: tuple[int, ...], source: str
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Check ``boxes`` ``[B, F, N, d]`` (or ``[F, N, d]``) and ``masks`` ``[B, F, N]`` (or ``[F, N]``); add B."""
    if boxes.dim() == 3:
        boxes = boxes.unsqueeze(0)
    if masks.dim() == 2:
        masks = masks.unsqueeze(0)
    if boxes.dim() != 4 or boxes.shape[-1] not in box_dims:
        raise InvalidInputError(
            f"boxes must have shape [batch, frames, slots, {'|'.join(map(str, box_dims))}] (or without batch), "
            f"got {list(boxes.shape)}.",
            fix="Pass one normalised x1, y1, x2, y2 box per (frame, slot).", source=source)
    if tuple(masks.shape) != tuple(boxes.shape[:3]):
        if masks.dim() == 3 and masks.shape[0] == 1 and tuple(masks.shape[1:]) == tuple(boxes.shape[1:3]):
            masks = masks.expand(boxes.shape[0], -1, -1)
        else:
            raise InvalidInputError(
                f"masks must have shape {list(boxes.shape[:3])} (one 0/1 value per box), got {list(masks.shape)}.",
                fix="Pass a mask per (frame, slot), 1 where the object is present.", source=source)
    if boxes.shape[1] < 1 or boxes.shape[2] < 1:
        raise InvalidInputError(f"boxes hold {boxes.shape[1]} frames and {boxes.shape[2]} slots; both must be >= 1.",
                                fix="Pass at least one frame and one slot.", source=source)
    return boxes, masks


def first_param(module: nn.Module) -> torch.Tensor | None:
    return next(module.parameters(), None)


def hidden_arg(args: tuple, kwargs: dict, name: str = "hidden_states") -> torch.Tensor:
    return args[0] if args else kwargs[name]


def kwarg_index(forward: Any, name: str) -> int | None:
    """Positional index of ``name`` in a bound ``forward``'s signature (``self`` excluded), or None."""
    params = [p for p in inspect.signature(forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = [p.name for p in params]
    return names.index(name) if name in names else None


_GLIGEN_CHECKED: set[type] = set()


def check_gligen_branch(block: nn.Module, source: str) -> int:
    """Fail early when the installed diffusers' BasicTransformerBlock lacks the GLIGEN fuser branch we reuse.

    Returns the positional index of ``cross_attention_kwargs`` in the block's forward.
    """
    cls = type(block)
    index = kwarg_index(block.forward, "cross_attention_kwargs")
    ok = index is not None
    if ok and cls not in _GLIGEN_CHECKED:
        try:
            ok = "gligen" in inspect.getsource(cls.forward)
        except (OSError, TypeError):  # no source available (frozen install): trust the signature
            ok = True
        if ok:
            _GLIGEN_CHECKED.add(cls)
    if not ok:
        raise InvalidInputError(
            f"the installed diffusers {cls.__name__} has no GLIGEN branch (cross_attention_kwargs['gligen'] -> "
            "self.fuser), which this backend uses to place the fusers after attn1.",
            fix="Install a diffusers version with GLIGEN support (>= 0.17).", source=source)
    return index


# --------------------------------------------------------------------------------------------------- condition


@dataclass
class Condition:
    """Everything the hooks need for the forwards inside one ``conditioned()`` call (computed once).

    objs: ``[Bc*F, N, D]`` fuser tokens; strength: float or ``[Bc*F]`` tensor; extra: backend-specific tensors
    (``[Bc*F, ...]``), broadcast like objs.
    """

    objs: torch.Tensor
    frames: int
    strength: float | torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    cache: dict[Any, Any] = field(default_factory=dict)
    source: str = "TrackDiffusion attachment"

    @property
    def batch(self) -> int:
        return self.objs.shape[0] // self.frames

    def expand(self, t: torch.Tensor, batch_frames: int, name: str) -> torch.Tensor:
        """``t`` ``[Bc*F, ...]`` for a UNet batch of ``batch_frames`` rows (batch 1 broadcasts to any batch)."""
        if t.shape[0] == batch_frames:
            return t
        key = (name, batch_frames)
        if key in self.cache:
            return self.cache[key]
        videos = t.shape[0] // self.frames
        if batch_frames % self.frames or videos != 1:
            raise InvalidInputError(
                f"the conditioning ({name}) holds {videos} video(s) of {self.frames} frames, but the UNet runs "
                f"{batch_frames} frames in all.",
                fix="Pass boxes for every video of the UNet batch (CFG doubles it: give the unconditional half "
                    "masks 0), or a single video to share, with the UNet's frame count.",
                source=self.source)
        out = t.repeat((batch_frames // self.frames,) + (1,) * (t.dim() - 1))
        self.cache[key] = out
        return out

    def strength_for(self, x: torch.Tensor) -> float | torch.Tensor:
        if not isinstance(self.strength, torch.Tensor):
            return self.strength
        s = self.expand(self.strength, x.shape[0], "strength")
        return s.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.dim() - 1)))


def normalise_strength(strength: Any, frames: int, source: str) -> float | torch.Tensor:
    """float -> float; tensor/array ``[]``, ``[S]`` (per video) or ``[S, F]`` -> ``[S*F]`` float tensor.

    ``S`` is the UNet batch (or 1); it may differ from the boxes' batch (e.g. one shared video under CFG).
    """
    if isinstance(strength, (int, float)) and not isinstance(strength, bool):
        return float(strength)
    t = as_float_tensor(strength, "strength", source)
    if t.dim() == 0:
        return t.reshape(1).expand(frames).clone()
    if t.dim() == 1 and t.shape[0] >= 1:
        return t.repeat_interleave(frames)
    if t.dim() == 2 and t.shape[0] >= 1 and t.shape[1] == frames:
        return t.reshape(-1)
    raise InvalidInputError(
        f"strength must be a number, or a tensor of shape [videos] or [videos, {frames}], got {list(t.shape)}.",
        fix="Pass one strength per video of the UNet batch (or per video and frame).", source=source)


@dataclass
class LoadReport:
    """Result of :meth:`UNetAttachment.load_official_state_dict`. Keys are in diffusers naming."""

    loaded: list[str]  #: attachment keys that were loaded
    missing: list[str]  #: attachment keys the state dict lacks
    unexpected: list[str]  #: TrackDiffusion-looking keys this attachment does not have
    unet_loaded: list[str]  #: UNet keys loaded with ``include_unet=True`` (restored by ``detach()``)
    ignored: list[str]  #: everything else (e.g. the base UNet tensors of a whole-UNet file)


# --------------------------------------------------------------------------------------------------- attachment


class UNetAttachment(nn.Module):
    """Base of the diffusers attachments: module tree, grafting, hooks, conditioning, loading, training recipe.

    Subclasses implement ``conditioned``/``_make_condition`` and set ``STAGE_KEYWORDS``/``ADDED_MARKERS``.
    """

    SOURCE: ClassVar[str] = "TrackDiffusion attachment"
    #: stage -> substrings of the parameter names trained in that stage (official recipe)
    STAGE_KEYWORDS: ClassVar[Mapping[Any, tuple[str, ...]]] = {}
    STAGE_ALIASES: ClassVar[Mapping[Any, Any]] = {}
    #: substrings that mark a key as TrackDiffusion-added (unknown ones are reported as unexpected)
    ADDED_MARKERS: ClassVar[tuple[str, ...]] = (".fuser.", "position_net.")

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "_unet", unet)  # not a submodule: our state dict holds only the added keys
        object.__setattr__(self, "_grafts", [])
        object.__setattr__(self, "_handles", [])
        object.__setattr__(self, "_unet_backup", {})
        object.__setattr__(self, "_condition", None)
        object.__setattr__(self, "_fuser_paths", [])
        object.__setattr__(self, "_attached", True)

    # ---- module tree and grafting -------------------------------------------------------------------------------

    @property
    def unet(self) -> nn.Module:
        return self._unet

    @property
    def attached(self) -> bool:
        return self._attached

    def _tree_put(self, path: str, module: nn.Module) -> None:
        """Register ``module`` in this attachment's tree at dotted ``path`` (nested ModuleDicts)."""
        parts = path.split(".")
        node: nn.Module = self
        for part in parts[:-1]:
            child = node._modules.get(part)
            if child is None:
                child = nn.ModuleDict()
                node.add_module(part, child)
            node = child
        node.add_module(parts[-1], module)

    def _tree_get(self, path: str) -> nn.Module:
        return self.get_submodule(path)

    def _graft(self, path: str, module: nn.Module) -> None:
        """Put ``module`` at ``path`` in both the attachment tree and the UNet (undone by ``detach``)."""
        parent_path, _, name = path.rpartition(".")
        parent = self._unet.get_submodule(parent_path) if parent_path else self._unet
        if name in parent._modules or name in parent._parameters or name in parent.__dict__:
            raise InvalidInputError(
                f"the UNet already has a module at {path!r}: it is already attached, or it is a GLIGEN/TrackDiffusion "
                "UNet that has its own modules there.",
                fix="Call detach() on the previous attachment first, or use a stock UNet.", source=self.SOURCE)
        self._tree_put(path, module)
        parent.add_module(name, module)
        self._grafts.append((parent, name))

    @property
    def fusers(self) -> dict[str, nn.Module]:
        """Fuser module path (``<attention>.transformer_blocks.<i>.fuser``) -> fuser, in UNet order.

        A plain dict view: ``nn.ModuleDict`` keys cannot contain dots, so the modules live in a nested tree whose
        state-dict keys are the official ones (``<path>.<sub-key>``).
        """
        return {p: self._tree_get(p) for p in self._fuser_paths}

    # ---- hooks --------------------------------------------------------------------------------------------------

    def _hook(self, handle: Any) -> None:
        self._handles.append(handle)

    def _install_fuser(self, block: nn.Module, fuser: nn.Module, path: str) -> None:
        """Graft ``fuser`` on the spatial ``block`` and route the condition's tokens to it."""
        index = check_gligen_branch(block, self.SOURCE)
        self._graft(path, fuser)
        self._fuser_paths.append(path)

        def block_pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
            cond = self._condition
            if cond is None:
                return None
            x = hidden_arg(args, kwargs)
            gligen = {"objs": cond.expand(cond.objs, x.shape[0], "objs")}
            if len(args) > index:
                current = args[index]
                args = args[:index] + ({**(current or {}), "gligen": gligen},) + args[index + 1:]
            else:
                kwargs = {**kwargs, "cross_attention_kwargs": {**(kwargs.get("cross_attention_kwargs") or {}),
                                                               "gligen": gligen}}
            return args, kwargs

        def fuser_pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
            cond = self._condition
            if cond is None or len(args) > 2 or "strength" in kwargs:
                return None
            return args, {**kwargs, "strength": cond.strength_for(hidden_arg(args, kwargs, "x"))}

        self._hook(block.register_forward_pre_hook(block_pre_hook, with_kwargs=True))
        self._hook(fuser.register_forward_pre_hook(fuser_pre_hook, with_kwargs=True))

    # ---- conditioning -------------------------------------------------------------------------------------------

    def _check_attached(self) -> None:
        if not self._attached:
            raise InvalidInputError("this attachment was detached from its UNet.",
                                    fix="Attach again (pass this attachment's position_net and fusers to reuse them).",
                                    source=self.SOURCE)

    def _make_condition(self, *args: Any, **kwargs: Any) -> Condition:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_condition(self, *args: Any, **kwargs: Any) -> Condition:
        """Compute the tokens now (one position-net call) and use them in every following UNet forward.

        Same arguments as :meth:`conditioned`; undo with :meth:`clear_condition`. Prefer the context manager.
        """
        self._check_attached()
        cond = self._make_condition(*args, **kwargs)
        object.__setattr__(self, "_condition", cond)
        return cond

    def clear_condition(self) -> None:
        """Stop conditioning: following UNet forwards skip the fusers (base-model behaviour)."""
        object.__setattr__(self, "_condition", None)

    @contextlib.contextmanager
    def _conditioned(self, *args: Any, **kwargs: Any) -> Iterator[Condition]:
        previous = self._condition
        cond = self.set_condition(*args, **kwargs)
        try:
            yield cond
        finally:
            object.__setattr__(self, "_condition", previous)

    @property
    def condition(self) -> Condition | None:
        return self._condition

    # ---- detach -------------------------------------------------------------------------------------------------

    def detach(self) -> None:
        """Remove every hook and grafted module and restore overwritten UNet tensors: the UNet is as before.

        The attachment keeps its modules (reuse them with ``attach_*(unet, position_net=..., fusers=...)``).
        Calling it twice is harmless.
        """
        for handle in reversed(self._handles):
            handle.remove()
        self._handles.clear()
        for parent, name in reversed(self._grafts):
            if parent._modules.get(name) is not None:
                delattr(parent, name)
        self._grafts.clear()
        if self._unet_backup:
            tensors = dict(self._unet.named_parameters())
            tensors.update(self._unet.named_buffers())
            with torch.no_grad():
                for key, saved in self._unet_backup.items():
                    tensors[key].copy_(saved)
            self._unet_backup.clear()
        object.__setattr__(self, "_condition", None)
        object.__setattr__(self, "_attached", False)

    # ---- state dict ---------------------------------------------------------------------------------------------

    def _normalise_key(self, key: str) -> str:
        """Map a key of a supported file layout to diffusers naming (subclasses add ComfyUI naming etc.)."""
        for prefix in ("unet.", "model.diffusion_model."):
            if key.startswith(prefix):
                return key[len(prefix):]
        return key

    def _unet_key_selected(self, key: str) -> bool:
        """Which UNet keys ``include_unet=True`` loads (default: those the TrackDiffusion recipe trained)."""
        return any(k in key for kws in self.STAGE_KEYWORDS.values() for k in kws)

    def load_official_state_dict(self, state_dict: Mapping[str, torch.Tensor], *, strict: bool = True,
                                 include_unet: bool = False) -> LoadReport:
        """Load the added modules from an official TrackDiffusion state dict.

        Accepts the whole official UNet (diffusers naming: ``position_net.*``, ``<attention>.transformer_blocks.0.
        fuser.*``, ...; base tensors are ignored), this attachment's own ``state_dict()``, and the converted files of
        :func:`trackdiffusion.models.checkpoints.convert.load_delta` (see the subclass for the naming it maps).

        Args:
            strict: raise :class:`InvalidInputError` when attachment keys are missing or TrackDiffusion-looking keys
                are unknown. Shape mismatches always raise.
            include_unet: also copy the UNet tensors the official recipe trained (e.g. SVD ``conv_in``, ``conv_out``,
                ``time_mixer.mix_factor``) into the UNet; ``detach()`` restores the originals.
        """
        self._check_attached()
        own = self.state_dict(keep_vars=True)
        unet_tensors: dict[str, torch.Tensor] = {}
        if include_unet:
            unet_tensors = dict(self._unet.named_parameters())
            unet_tensors.update(self._unet.named_buffers())
        loaded, unexpected, unet_loaded, ignored = [], [], [], []
        pending: list[tuple[str, torch.Tensor, torch.Tensor, bool]] = []
        for raw_key, value in state_dict.items():
            key = self._normalise_key(raw_key)
            if key in own:
                pending.append((key, own[key], value, False))
            elif include_unet and key in unet_tensors and self._unet_key_selected(key):
                pending.append((key, unet_tensors[key], value, True))
            elif any(m in key for m in self.ADDED_MARKERS):
                unexpected.append(raw_key)
            else:
                ignored.append(raw_key)
        bad = [f"{k}: file {list(v.shape)} vs model {list(t.shape)}" for k, t, v, _ in pending
               if tuple(v.shape) != tuple(t.shape) and not (t.dim() == 0 and v.numel() == 1)]
        if bad:
            raise InvalidInputError(
                f"{len(bad)} tensor(s) have the wrong shape, e.g. {'; '.join(bad[:3])}.",
                fix="Attach to a UNet with the checkpoint's configuration (channels, cross-attention dim).",
                source=self.SOURCE)
        present = {k for k, _, _, is_unet in pending if not is_unet}
        missing = sorted(k for k in own if k not in present)
        if strict and (missing or unexpected):
            raise InvalidInputError(
                f"the state dict does not match this attachment: {len(missing)} missing key(s) "
                f"{missing[:3]}, {len(unexpected)} unexpected key(s) {unexpected[:3]}.",
                fix="Load the matching TrackDiffusion checkpoint, or pass strict=False.", source=self.SOURCE)
        with torch.no_grad():
            for key, target, value, is_unet in pending:
                if is_unet:
                    if key not in self._unet_backup:
                        self._unet_backup[key] = target.detach().clone()
                    unet_loaded.append(key)
                else:
                    loaded.append(key)
                if target.device.type != "meta":
                    target.copy_(value.reshape(target.shape))
        return LoadReport(sorted(loaded), missing, unexpected, sorted(unet_loaded), ignored)

    # ---- training -----------------------------------------------------------------------------------------------

    def _stage_keywords(self, stage: Any) -> tuple[str, ...]:
        stage = self.STAGE_ALIASES.get(stage, stage)
        if stage not in self.STAGE_KEYWORDS:
            raise InvalidInputError(f"unknown training stage {stage!r}.",
                                    fix=f"Use one of {sorted(map(str, self.STAGE_KEYWORDS))} "
                                        f"(aliases {sorted(map(str, self.STAGE_ALIASES))}).",
                                    source=self.SOURCE)
        return self.STAGE_KEYWORDS[stage]

    def named_trainable_parameters(self, stage: Any, *, freeze: bool = False) -> list[tuple[str, nn.Parameter]]:
        """``(name, parameter)`` of the UNet (attachment included) trained in ``stage`` by the official recipe.

        Names are the official ones (``unet.named_parameters()`` while attached). With ``freeze=True`` every other
        UNet parameter gets ``requires_grad=False`` and the selected ones ``True`` (as the official scripts do).
        """
        self._check_attached()
        keywords = self._stage_keywords(stage)
        selected = [(n, p) for n, p in self._unet.named_parameters() if any(k in n for k in keywords)]
        if freeze:
            chosen = {id(p) for _, p in selected}
            for p in self._unet.parameters():
                p.requires_grad_(id(p) in chosen)
        return selected

    def trainable_parameters(self, stage: Any, *, freeze: bool = False) -> list[nn.Parameter]:
        """The parameters of :meth:`named_trainable_parameters` (for the optimizer)."""
        return [p for _, p in self.named_trainable_parameters(stage, freeze=freeze)]

    def extra_repr(self) -> str:
        return f"fusers={len(self._fuser_paths)}, attached={self._attached}"


def iter_named(unet: nn.Module, cls: type | tuple[type, ...]) -> Iterable[tuple[str, nn.Module]]:
    """``(path, module)`` of the modules of ``cls`` in ``unet``: down blocks, mid block, up blocks, then the rest."""
    found = [(n, m) for n, m in unet.named_modules() if isinstance(m, cls)]
    order = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}

    def key(item: tuple[str, nn.Module]) -> tuple:
        head, *rest = item[0].split(".")
        return (order.get(head, -1 if head == "transformer_in" else 3),
                tuple(int(p) if p.isdigit() else -1 for p in rest))

    return sorted(found, key=key)
