"""Guidance, in one place: the classifier-free guidance rules (:mod:`.cfg`: SVD's and the official normalized CFG),
and SG-I2V's training-free box guidance (:mod:`.sgi2v`: geometry, alignment loss, latent optimisation and FFT reset;
:mod:`.sgi2v.demo_model` runs it on the embedded demo model). The ComfyUI sampler node uses them through
``nodes/patches/sgi2v.py``."""
