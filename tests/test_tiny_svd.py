"""The tiny SVD's core pieces without ComfyUI: its VAE in ComfyUI's TAESD layout, the VAE's starting point, the
ComfyUI-equivalent sampler, the base training and the official-layout export (ComfyUI itself: tests/integration)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from trackdiffusion.models.svd import sampling
from trackdiffusion.models.tiny_svd import config as tiny
from trackdiffusion.models.tiny_svd import files
from trackdiffusion.models.tiny_svd.vae import build_vae, comfyui_state_dict, decode, encode, encode_condition


def safe_metadata(path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def random_vae(seed=0, scaling_factor=0.7):
    torch.manual_seed(seed)
    vae = build_vae(scaling_factor).eval()
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return vae


def test_taesd_layout_is_the_same_function_at_64_channels():
    """The padded weights, put back under diffusers' names into a 64-channel AutoencoderTiny, compute the same
    latents and frames: the extra channels stay zero."""
    from diffusers import AutoencoderTiny

    vae = random_vae()
    sd = comfyui_state_dict(vae)
    assert sd["taesd_encoder.0.weight"].shape == (64, 3, 3, 3) and sd["taesd_encoder.14.weight"].shape == (4, 64, 3, 3)
    assert sd["taesd_decoder.1.weight"].shape == (64, 4, 3, 3) and sd["taesd_decoder.19.weight"].shape == (3, 64, 3, 3)
    assert float(sd["vae_scale"]) == pytest.approx(tiny.SD_SCALE_FACTOR / 0.7)
    wide = AutoencoderTiny(encoder_block_out_channels=(64,) * 4, decoder_block_out_channels=(64,) * 4,
                           scaling_factor=0.7).eval()
    renamed = {}
    for key, value in sd.items():
        part, index, *rest = key.split(".") if "." in key else (key, None)
        if part == "taesd_encoder":
            renamed[".".join(["encoder.layers", index, *rest])] = value
        elif part == "taesd_decoder":
            renamed[".".join(["decoder.layers", str(int(index) - 1), *rest])] = value
    wide.load_state_dict(renamed, strict=True)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(encode(wide, x), encode(vae, x), atol=1e-5)
        z = encode(vae, x)
        assert torch.allclose(decode(wide, z), decode(vae, z), atol=1e-5)
        # the image latent SVD concatenates is the unscaled one, as ComfyUI's VAE.encode returns it
        assert torch.allclose(encode_condition(vae, x), z / tiny.SD_SCALE_FACTOR)


def test_the_vae_starts_as_average_pooling_and_nearest_upsampling():
    from trackdiffusion.training.tiny_svd_vae import pooling_init

    vae = build_vae().eval()
    with torch.no_grad():
        pooling_init(vae)
        x = torch.rand(2, 3, 64, 64) * 2 - 1
        e = vae.encoder(x)
        cells = torch.nn.functional.avg_pool2d((x + 1) / 2, 8)
        assert torch.allclose(e[:, :3], cells - 0.5, atol=1e-5)
        assert torch.allclose(e[:, 3], cells.mean(1) - 0.5, atol=1e-5)
        y = vae.decoder(e)
        clamp = torch.tanh((cells - 0.5) / 3) * 3 + 0.5  # the decoder's own tanh clamp, then the copy
        expected = torch.nn.functional.interpolate(clamp, scale_factor=8, mode="nearest") * 2 - 1
        assert torch.allclose(y, expected, atol=1e-5)


def test_karras_sigmas_by_hand():
    s = sampling.karras_sigmas(3)
    rho = 7.0
    hi, lo = 700 ** (1 / rho), 0.002 ** (1 / rho)
    expected = [hi ** rho, ((hi + lo) / 2) ** rho, lo ** rho, 0.0]
    assert torch.allclose(s, torch.tensor(expected), rtol=1e-5)


class LinearUNet(torch.nn.Module):
    """A stand-in UNet whose output is a fixed mix of its inputs, so the sampler can be followed by hand."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, sample, timestep, encoder_hidden_states, added_time_ids):
        x, image = sample[:, :, :4], sample[:, :, 4:]
        out = self.w * x + 0.1 * image + encoder_hidden_states.mean() + 0.01 * added_time_ids.sum()
        return type("Out", (), {"sample": out})()


def test_sampler_follows_comfyui_by_hand():
    unet = LinearUNet()
    image = torch.randn(4, 2, 2)
    emb = torch.randn(1, 1, 8)
    frames, steps, seed = 3, 2, 5
    got = sampling.sample_svd(unet, image, emb, frames=frames, steps=steps, seed=seed, min_cfg=1.0, max_cfg=2.0,
                              fps=8, motion_bucket=100, augmentation=0.0)
    # by hand: ComfyUI's noise, max-denoise start, v-prediction EDM, per-frame CFG, Euler
    sig = sampling.karras_sigmas(steps)
    x = torch.randn((frames, 4, 2, 2), generator=torch.manual_seed(seed)) * math.sqrt(1 + float(sig[0]) ** 2)
    ids = 7 + 100 + 0.0
    scale = torch.tensor([1.0, 1.5, 2.0]).view(3, 1, 1, 1)
    for i in range(steps):
        s, s_next = float(sig[i]), float(sig[i + 1])
        c_in, c_out, c_skip = 1 / math.sqrt(s * s + 1), -s / math.sqrt(s * s + 1), 1 / (s * s + 1)
        cond = x * c_skip + c_out * (0.5 * x * c_in + 0.1 * image + emb.mean() + 0.01 * ids)
        uncond = x * c_skip + c_out * (0.5 * x * c_in + 0.01 * ids)
        denoised = uncond + scale * (cond - uncond)
        x = x + (x - denoised) / s * (s_next - s)
    assert torch.allclose(got, x, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_svd")
    random_vae(scaling_factor=1.0).save_pretrained(root / "vae_src")
    return files.init_folder(root / "model", root / "vae_src")


def test_init_folder_loads_in_both_forms(tiny_folder):
    model = files.load(tiny_folder)
    assert sum(p.numel() for p in model.unet.parameters()) == pytest.approx(7.88e6, rel=0.01)
    parts = files.comfyui_parts(tiny_folder)
    assert len(parts["unet"]) == len(model.unet.state_dict())
    assert all(k.startswith("model.diffusion_model.") for k in parts["unet"])
    with open(parts["clip_vision_config"]) as fh:
        assert json.loads(fh.read())["projection_dim"] == tiny.CONTEXT_DIM
    with pytest.raises(Exception, match="already holds"):
        files.init_folder(tiny_folder, tiny_folder / "vae")


def test_svd_base_trains_the_whole_unet_and_resumes(tiny_folder, tmp_path):
    from trackdiffusion.training.train import TrainConfig, train

    common = {"model": "svd-base", "data": "syntrack", "base": str(tiny_folder / "unet"),
              "vae": str(tiny_folder / "vae"), "image_encoder": str(tiny_folder / "image_encoder"),
              "size": (64, 64), "frames": 16, "batch": 1, "lr": 1e-3, "warmup": 0, "progress": False}
    run = train(TrainConfig(out=str(tmp_path / "a"), steps=2, save_every=1, **common))
    assert (run.adapter / "config.json").is_file()
    from diffusers import UNetSpatioTemporalConditionModel

    before = UNetSpatioTemporalConditionModel.from_pretrained(str(tiny_folder / "unet")).state_dict()
    after = UNetSpatioTemporalConditionModel.from_pretrained(str(run.adapter)).state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > 0.9 * len(before)  # the whole UNet trains (a few tensors get no gradient at step 1)
    # resuming after step 1 repeats step 2 exactly
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(out=str(tmp_path / "b"), steps=2, save_every=1, **common), callback=_interrupt_after(1))
    resumed = train(TrainConfig(out=str(tmp_path / "b"), steps=2, save_every=1, resume=True, **common))
    again = UNetSpatioTemporalConditionModel.from_pretrained(str(resumed.adapter)).state_dict()
    assert all(torch.equal(after[k], again[k]) for k in after)


def _interrupt_after(step):
    def callback(done, values):
        if done == step:
            raise KeyboardInterrupt  # what Ctrl-C does between steps

    return callback


def test_svd_base_needs_a_base_and_a_vae(tmp_path):
    from trackdiffusion.data.errors import InvalidInputError
    from trackdiffusion.training.train import TrainConfig

    with pytest.raises(InvalidInputError, match="svd-base trains a whole SVD UNet"):
        TrainConfig(model="svd-base", data="syntrack", out=str(tmp_path), tiny="small").resolved()


def test_trackdiffusion_runs_also_write_the_official_release_layout(tiny_folder, tmp_path):
    """What the official release ships (svd_stage<N>/unet, a whole diffusers UNet with the modules at their official
    keys) is what `weights convert` takes: the run's own delta and the converted one hold the same tensors."""
    from safetensors.torch import load_file

    from trackdiffusion.models.checkpoints import convert_svd, load_delta
    from trackdiffusion.training.train import TrainConfig, train

    run = train(TrainConfig(model="trackdiffusion-svd", data="syntrack", out=str(tmp_path / "td"),
                            base=str(tiny_folder / "unet"), vae=str(tiny_folder / "vae"),
                            image_encoder=str(tiny_folder / "image_encoder"), size=(64, 64), frames=16, stage=2,
                            steps=1, lr=1e-3, warmup=0, progress=False))
    folder = tmp_path / "td" / "svd_stage2" / "unet"
    config = json.loads((folder / "config.json").read_text())
    assert config["_name_or_path"] == "svd_stage2/checkpoint-1"
    assert config["_class_name"] == "UNetSpatioTemporalConditionModel"
    result = convert_svd(folder / "diffusion_pytorch_model.safetensors", tmp_path / "converted", dtype="fp32")
    converted, meta = load_delta(result.path)
    own = load_file(str(run.adapter))
    assert meta["stage"] == "2" and set(converted) == set(own)
    # the tiny SVD is recognised as the base (told apart from SVD img2vid by its widths), in both files, unwarned
    own_meta = safe_metadata(run.adapter)
    assert meta["base"] == own_meta["base"] == "tiny_svd" and "warnings" not in meta
    assert all(torch.equal(converted[k].float(), own[k].float()) for k in own)


def test_latents_are_normalised_per_channel_and_the_decoder_compensates():
    """normalize_latents centres and scales each latent channel (folded into the encoder's last convolution) and
    undoes it in the decoder's first one: latents zero-mean, unit-variance; decoded frames nearly as before (TAESD's
    tanh clamp sits between the two, near-linear at these magnitudes)."""
    from trackdiffusion.evaluation.synth import make_split
    from trackdiffusion.training.latents import _to_float
    from trackdiffusion.training.tiny_svd_vae import normalize_latents, pooling_init

    vae = build_vae().eval()
    with torch.no_grad():
        pooling_init(vae)  # a decoder that reproduces its input's cells: any uncompensated change shows
        last = [m for m in vae.encoder.layers if isinstance(m, torch.nn.Conv2d)][-1]
        last.bias.add_(torch.tensor([0.1, -0.2, 0.15, 0.05]))  # distinct channel offsets, as a trained encoder has
        before = vae.decoder(vae.encoder(_to_float(make_split("val", "eval", 2)[0].video)))
        import copy

        original_decoder = copy.deepcopy(vae.decoder)
        sf = normalize_latents(vae, clips=2)
        vae.register_to_config(scaling_factor=sf)
        x = torch.cat([_to_float(c.video) for c in make_split("val", "eval", 2)])
        z = encode(vae, x)
        assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(4), atol=1e-3)
        assert torch.allclose(z.std((0, 2, 3)), torch.ones(4) * float(z.std((0, 2, 3)).mean()), rtol=1e-3)
        assert abs(float(z.std()) - 1.0) < 0.05
        after = vae.decoder(vae.encoder(x[:16]))
        uncompensated = original_decoder(vae.encoder(x[:16]))
        change = float((after - before).abs().mean())
        assert change < 0.1 * float((uncompensated - before).abs().mean()), change


def test_comfyui_parts_need_no_diffusers(tiny_folder):
    """ComfyUI does not install diffusers: Load Tiny SVD's parts come from the files alone (a child process where
    importing diffusers fails), and the VAE's equal what the diffusers model's conversion gives."""
    import subprocess
    import sys

    from diffusers import AutoencoderTiny
    from safetensors.torch import load_file

    out = tiny_folder.parent / "parts.safetensors"
    code = ("import sys; sys.modules['diffusers'] = None\n"
            "from safetensors.torch import save_file\n"
            "from trackdiffusion.models.tiny_svd.files import comfyui_parts\n"
            f"save_file(comfyui_parts({str(tiny_folder)!r})['vae'], {str(out)!r})\n")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    vae = AutoencoderTiny.from_pretrained(str(tiny_folder / "vae"), local_files_only=True)
    expected, got = comfyui_state_dict(vae), load_file(str(out))
    assert sorted(got) == sorted(expected)
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_demo_runs_trackdiffusion_on_the_shipped_tiny_svd(tmp_path, capsys):
    """`trackdiffusion demo --model tiny-svd`: the official path on the shipped weights (a one-step training run's
    svd_stage2/unet, converted by `weights convert`, given with --adapter); a missing adapter is one line."""
    from PIL import Image

    from trackdiffusion.__main__ import main
    from trackdiffusion.training.train import TrainConfig, train

    weights = files.WEIGHTS
    train(TrainConfig(model="trackdiffusion-svd", data="syntrack", out=str(tmp_path / "td"),
                      base=str(weights / "unet"), vae=str(weights / "vae"),
                      image_encoder=str(weights / "image_encoder"), size=(64, 64), frames=16, stage=2, steps=1,
                      lr=1e-3, warmup=0, progress=False))
    adapter = tmp_path / "adapter.safetensors"
    assert main(["weights", "convert", str(tmp_path / "td" / "svd_stage2" / "unet"), str(adapter)]) == 0
    out = tmp_path / "demo.gif"
    assert main(["demo", str(out), "--model", "tiny-svd", "--adapter", str(adapter), "--steps", "2",
                 "--frames", "4"]) == 0
    assert "by the tiny SVD with TrackDiffusion" in capsys.readouterr().out
    with Image.open(out) as gif:
        assert gif.n_frames == 4 and gif.size == (2 * 64 * 4, 64 * 4)
    assert main(["demo", str(tmp_path / "x.gif"), "--model", "tiny-svd", "--adapter", str(tmp_path / "no")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "adapter is missing" in err and not (tmp_path / "x.gif").exists()


def test_demo_method_sgi2v_steers_the_stock_tiny_svd(tmp_path, capsys):
    """`trackdiffusion demo --method sgi2v`: SG-I2V's latent optimisation on the stock tiny SVD (the diffusers
    backend, held equal to the ComfyUI sampler in integration/test_tiny_svd_in_comfyui.py): the command writes its
    clip; generate_sgi2v guides the band's steps and changes the video; wrong combinations are one line each."""
    from PIL import Image

    from trackdiffusion.__main__ import main
    from trackdiffusion.evaluation.synth import make_clip
    from trackdiffusion.models.tiny_svd import demo, pipeline

    out = tmp_path / "sg.gif"
    assert main(["demo", str(out), "--method", "sgi2v", "--steps", "8", "--frames", "8", "--seed", "3"]) == 0
    assert "steered by SG-I2V" in capsys.readouterr().out
    with Image.open(out) as gif:
        assert gif.n_frames == 8 and gif.size == (2 * 64 * 4, 64 * 4)
    clip = make_clip(20000, "eval")
    report = []
    guided = demo.generate_sgi2v(clip.video[0], clip.tracklets, frames=8, steps=8, seed=3, report=report)
    assert [r["step"] for r in report] == [1, 2, 3]  # 8 steps: the band 0.1..0.4
    assert all(len(r["losses"]) == 5 for r in report)
    plain = pipeline.generate(files.load(), clip.video[0], frames=8, steps=8, seed=3)
    assert np.abs(guided.astype(float) - plain.astype(float)).mean() > 0.5  # measured 1.36
    for argv, message in ((["--method", "sgi2v", "--model", "conv"], "runs on the tiny SVD"),
                          (["--method", "sgi2v", "--adapter", "x.safetensors"], "takes no --adapter")):
        assert main(["demo", str(tmp_path / "bad.gif"), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and not (tmp_path / "bad.gif").exists()
