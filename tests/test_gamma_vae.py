"""Tests for echodiff.networks.gamma_vae (Gamma-VAE of Stojanovski et al. 2024)."""

from __future__ import annotations

import math

import pytest
import torch
from echodiff.errors import ShapeMismatchError
from echodiff.losses import GammaVAELoss
from echodiff.networks import GammaVAE

TINY = dict(channels=(8, 16, 16), norm_num_groups=8)


def sector_images(batch: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Echo-like phantom: speckle in (0.05, 0.95) inside a fan with its apex at the top, exact zeros outside."""
    generator = torch.Generator().manual_seed(seed)
    rows, cols = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float() - size / 2 + 0.5, indexing="ij")
    fan = (torch.hypot(rows, cols) < 0.9 * size) & (torch.atan2(cols, rows).abs() < 0.6)
    return (0.05 + 0.9 * torch.rand(batch, 1, size, size, generator=generator)) * fan


def block_any(mask: torch.Tensor, factor: int) -> torch.Tensor:
    """True for each factor x factor block of a (B, 1, H, W) mask holding any True pixel."""
    b, c, h, w = mask.shape
    return mask.reshape(b, c, h // factor, factor, w // factor, factor).any(dim=5).any(dim=3)


def tiny_vae(**kwargs: object) -> GammaVAE:
    torch.manual_seed(0)
    return GammaVAE(**{**TINY, **kwargs})


def test_latent_grid_is_image_over_two_to_the_number_of_downsamplings() -> None:
    assert GammaVAE().latent_shape((2, 1, 256, 256)) == (2, 1, 64, 64)  # L64: 3 levels, 2 downsamplings
    assert GammaVAE(channels=(64, 128)).latent_shape((1, 256, 256)) == (1, 128, 128)  # L128: 2 levels
    x = sector_images()
    for channels, latent_size in [((8, 16, 16), 8), ((8, 16), 16)]:
        vae = tiny_vae(channels=channels).eval()
        recon, z, concentration, rate = vae(x)
        assert recon.shape == x.shape
        assert z.shape == concentration.shape == rate.shape == (2, 1, latent_size, latent_size)
        assert vae.latent_shape(x.shape) == z.shape


def test_image_size_not_multiple_of_downsampling_factor_raises_shape_mismatch() -> None:
    with pytest.raises(ShapeMismatchError, match="multiple of 4"):
        tiny_vae().encode(torch.rand(1, 1, 30, 32))


def test_concentration_and_rate_are_positive_scaled_softplus() -> None:
    vae = tiny_vae()
    concentration, rate = vae.encode(sector_images())
    assert (concentration > 0).all() and (rate > 0).all()
    a, b = vae.encoder(sector_images()).chunk(2, dim=1)
    softplus = torch.nn.functional.softplus
    torch.testing.assert_close(concentration, 3.75 * softplus(a, beta=10) + 1e-6)
    torch.testing.assert_close(rate, 10.8 * softplus(b, beta=10) + 1e-6)


def test_eval_forward_uses_posterior_mean() -> None:
    vae = tiny_vae().eval()
    x = sector_images()
    with torch.no_grad():
        _, z_first, concentration, rate = vae(x)
        _, z_second, _, _ = vae(x)
    torch.testing.assert_close(z_first, z_second, rtol=0, atol=0)
    torch.testing.assert_close(z_first, concentration / rate * vae.latent_mask(x > 0))


def test_training_forward_samples_the_posterior() -> None:
    vae = tiny_vae().train()
    x = sector_images()
    with torch.no_grad():
        _, z_first, _, _ = vae(x)
        _, z_second, _, _ = vae(x)
    assert not torch.equal(z_first, z_second)


def test_encode_for_diffusion_is_posterior_mean_in_training_mode_too() -> None:
    vae = tiny_vae().train()
    x = sector_images()
    with torch.no_grad():
        first, second = vae.encode_for_diffusion(x), vae.encode_for_diffusion(x)
        concentration, rate = vae.encode(x)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    expected = (concentration / rate * vae.latent_mask(x > 0) * 2 - 1).clamp(-1, 1)
    torch.testing.assert_close(first, expected)


def test_latent_mask_is_max_pool_of_sector() -> None:
    vae = tiny_vae()
    x = sector_images()
    expected = block_any(x > 0, 4)
    assert expected.any() and not expected.all()
    assert torch.equal(vae.latent_mask(x > 0), expected.float())


def test_latent_and_reconstruction_are_zero_outside_sector() -> None:
    x = sector_images()
    outside_latent = ~block_any(x > 0, 4)
    for mode in ("train", "eval"):
        vae = getattr(tiny_vae(), mode)()
        with torch.no_grad():
            recon, z, _, _ = vae(x)
            latent = vae.encode_for_diffusion(x)
        assert (z[outside_latent] == 0).all()
        assert (recon[x == 0] == 0).all()
        assert (latent[outside_latent] == -1).all()


def test_explicit_sector_mask_replaces_image_threshold() -> None:
    vae = tiny_vae().eval()
    x = sector_images()
    sector = torch.zeros_like(x, dtype=torch.bool)
    sector[..., :16, :] = True
    with torch.no_grad():
        recon, _, _, _ = vae(x, sector)
    assert (recon[..., 16:, :] == 0).all()
    with pytest.raises(ShapeMismatchError, match="sector_mask"):
        vae(x, sector[..., :16, :])


def test_diffusion_round_trip_decodes_into_unit_interval_inside_sector() -> None:
    vae = tiny_vae().eval()
    x = sector_images()
    with torch.no_grad():
        latent = vae.encode_for_diffusion(x)
        image = vae.decode_from_diffusion(latent, x > 0)
    assert latent.shape == (2, 1, 8, 8) and latent.min() >= -1 and latent.max() <= 1
    assert image.shape == x.shape
    assert image.min() >= 0 and image.max() <= 1
    assert (image[x == 0] == 0).all()
    with pytest.raises(ShapeMismatchError, match="sector_mask"):
        vae.decode_from_diffusion(latent, (x > 0)[..., :16, :16])


def test_rsample_is_reparameterised_gradients_reach_concentration_and_rate() -> None:
    concentration = torch.full((64,), 3.0, requires_grad=True)
    rate = torch.full((64,), 9.0, requires_grad=True)
    GammaVAE.sample_latent(concentration, rate).sum().backward()
    assert concentration.grad is not None and (concentration.grad > 0).all()  # larger k -> larger z
    assert rate.grad is not None and (rate.grad < 0).all()  # z = standard Gamma / rate
    vae = tiny_vae().train()
    _, z, _, _ = vae(sector_images())
    z.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vae.encoder.parameters())


def test_training_steps_reduce_loss_on_tiny_batch() -> None:
    vae = tiny_vae(channels=(8, 16))
    loss_fn = GammaVAELoss()
    x = sector_images(batch=4, size=16)
    latent_mask = vae.latent_mask(x > 0)

    def eval_loss() -> float:
        vae.eval()
        with torch.no_grad():
            return loss_fn(x, *vae(x), latent_mask)[1]["total"]

    optimiser = torch.optim.Adam(vae.parameters(), lr=3e-3)
    before = eval_loss()
    torch.manual_seed(1)
    for _ in range(10):
        vae.train()
        loss, _ = loss_fn(x, *vae(x), latent_mask)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = eval_loss()
    assert math.isfinite(after) and after < 0.5 * before
