"""The multi-band log-magnitude discriminator (the spectral decoder's adversary): each band is
judged by its own convolutions, what renders as silence is not told apart, bad bands are refused."""

import math

import pytest
import torch

from vqaudio.codec.discriminator import (
    MultiBandSpectrogramDiscriminator,
    discriminator_loss,
    generator_losses,
)
from vqaudio.codec.spectral import LOG_FLOOR, log_magnitude
from vqaudio.errors import ConfigError

from .conftest import harmonic

RATE, N_FFT, HOP = 8000, 512, 128


def _discriminator() -> MultiBandSpectrogramDiscriminator:
    torch.manual_seed(0)
    return MultiBandSpectrogramDiscriminator(RATE, N_FFT, (0.0, 1000.0, 2500.0), channels=4)


def test_bands_split_the_bins_and_each_is_judged_on_its_own():
    disc = _discriminator()
    assert disc.bands == [(0, 64), (64, 160), (160, 257)]  # 1000 Hz = bin 64 at 15.6 Hz/bin
    log_mag = log_magnitude(harmonic(4000, RATE, f0=220.0), N_FFT, HOP)  # harmonics < 1 kHz
    base = disc(log_mag)
    assert len(base) == 3 and all(logits.shape[0] == 1 for logits, _ in base)
    louder = log_mag.clone()
    louder[..., 10:40, :] += 1.0  # the low band only
    changed = disc(louder)
    assert not torch.equal(changed[0][0], base[0][0])
    assert all(torch.equal(changed[k][0], base[k][0]) for k in (1, 2))


def test_values_below_the_floor_are_not_told_apart():
    """The decoder renders anything below log(LOG_FLOOR) as silence: so does the judge."""
    disc = _discriminator()
    floor = torch.full((1, 1, 257, 20), math.log(LOG_FLOOR))
    a, b = disc(floor), disc(floor - 20.0)
    assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b))


def test_hinge_losses_fit_the_bands_and_reach_the_prediction():
    disc = _discriminator()
    real = log_magnitude(harmonic(4000, RATE), N_FFT, HOP)
    fake = (real - 1.0).requires_grad_()
    d_loss = discriminator_loss(disc(real), disc(fake.detach()))
    adversarial, matching = generator_losses(disc(real), disc(fake))
    assert torch.isfinite(d_loss) and float(matching) > 0
    (adversarial + matching).backward()
    assert fake.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "bands, message", [((0.0, 4000.0), "Nyquist"), ((0.0, 10.0), "narrower than two")]
)
def test_bands_that_do_not_fit_the_stft_are_refused(bands, message):
    with pytest.raises(ConfigError, match=message):
        MultiBandSpectrogramDiscriminator(RATE, N_FFT, bands)
