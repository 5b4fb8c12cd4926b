"""Tests for echodiff.networks.preconditioning (Karras et al. 2022, Table 1)."""

from __future__ import annotations

import math

import pytest
import torch
from echodiff.errors import ConfigKeyError, ShapeMismatchError
from echodiff.networks import (
    PRECONDITIONERS,
    EDMPrecond,
    VEPrecond,
    VPPrecond,
    build_precond,
    noise_level_to_timestep,
    ve_noise_level_to_timestep,
    vp_sigma,
    vp_sigma_inv,
)
from monai.networks.nets import DiffusionModelUNet, SPADEDiffusionModelUNet
from torch import Tensor, nn


class ZeroNetwork(nn.Module):
    """F = 0, recording the timesteps it was given."""

    def forward(self, x: Tensor, timesteps: Tensor) -> Tensor:
        self.timesteps = timesteps
        return torch.zeros_like(x)


def test_edm_coefficients_match_hand_values() -> None:
    precond = EDMPrecond(ZeroNetwork())
    # sigma, c_skip, c_out, c_in, c_noise for sigma_data = 0.5, computed by hand
    table = [
        (0.5, 0.5, 0.353553, 1.414214, -0.173287),
        (1.0, 0.2, 0.447214, 0.894427, 0.0),
        (2.0, 1 / 17, 0.485071, 0.485071, 0.173287),
    ]
    for sigma, *expected in table:
        got = precond.coefficients(torch.tensor(sigma))
        assert [float(c) for c in got] == pytest.approx(expected, abs=1e-6)


def test_edm_training_target_has_unit_variance() -> None:
    """Karras et al. 2022, Eq. 7 / Appendix B.6: Var[(y - c_skip (y + s n)) / c_out] = 1 for y ~ N(0, sd^2)."""
    sigma_data = 0.5
    precond = EDMPrecond(ZeroNetwork(), sigma_data=sigma_data)
    sigma = torch.logspace(-3, 2, 11, dtype=torch.float64)
    c_skip, c_out, _, _ = precond.coefficients(sigma)
    variance = ((1 - c_skip) ** 2 * sigma_data**2 + c_skip**2 * sigma**2) / c_out**2
    torch.testing.assert_close(variance, torch.ones_like(sigma))

    generator = torch.Generator().manual_seed(0)
    y = sigma_data * torch.randn(200_000, generator=generator)
    n = torch.randn(200_000, generator=generator)
    for s in (0.02, 0.5, 20.0):
        c_skip, c_out, _, _ = precond.coefficients(torch.tensor(s))
        target = (y - c_skip * (y + s * n)) / c_out
        assert float(target.var()) == pytest.approx(1.0, abs=0.02)


def test_vp_coefficients_match_table_1() -> None:
    precond = VPPrecond(ZeroNetwork())
    sigma = vp_sigma(0.5)
    c_skip, c_out, c_in, c_noise = precond.coefficients(sigma)
    assert float(c_skip) == 1 and float(c_out) == pytest.approx(-float(sigma))
    assert float(c_in) == pytest.approx(1 / math.sqrt(float(sigma) ** 2 + 1))
    assert float(c_noise) == pytest.approx(999 * 0.5, abs=1e-3)
    assert precond.sigma_min == pytest.approx(float(vp_sigma(1e-5)))
    assert precond.sigma_max == pytest.approx(math.sqrt(math.exp(19.9 / 2 + 0.1) - 1))


def test_vp_sigma_inv_inverts_vp_sigma() -> None:
    t = torch.linspace(1e-5, 1, 50, dtype=torch.float64)
    torch.testing.assert_close(vp_sigma_inv(vp_sigma(t)), t)
    smallest = torch.tensor(1e-5)  # float32 at epsilon_t: expm1 / log1p keep the round trip accurate
    assert float(vp_sigma_inv(vp_sigma(smallest))) == pytest.approx(1e-5, rel=1e-3)


def test_ve_coefficients_match_table_1() -> None:
    c_skip, c_out, c_in, c_noise = VEPrecond(ZeroNetwork()).coefficients(torch.tensor(4.0))
    assert [float(c) for c in (c_skip, c_out, c_in, c_noise)] == pytest.approx([1, 4, 1, math.log(2)])


@pytest.mark.parametrize("kind", sorted(PRECONDITIONERS))
def test_zero_network_denoiser_is_c_skip_times_input(kind: str) -> None:
    precond = build_precond(kind, ZeroNetwork())
    x = torch.randn(3, 1, 8, 8)
    sigma = torch.tensor([0.1, 1.0, 10.0])
    c_skip = precond.coefficients(sigma.reshape(-1, 1, 1, 1))[0]
    torch.testing.assert_close(precond(x, sigma), c_skip * x)


def test_sigma_as_float_zero_dim_or_per_sample_gives_same_denoiser() -> None:
    precond = EDMPrecond(ZeroNetwork())
    x = torch.randn(2, 1, 4, 4)
    expected = precond(x, torch.tensor([0.7, 0.7]))
    torch.testing.assert_close(precond(x, 0.7), expected)
    torch.testing.assert_close(precond(x, torch.tensor(0.7)), expected)
    assert precond.model.timesteps.shape == (2,)
    with pytest.raises(ShapeMismatchError, match="one per sample"):
        precond(x, torch.tensor([0.1, 0.2, 0.3]))


def test_edm_timestep_map_is_monotone_and_lands_in_monai_range() -> None:
    sigma = torch.logspace(math.log10(0.002), math.log10(80), 200)
    timesteps = noise_level_to_timestep(sigma.log() / 4)
    assert (timesteps.diff() > 0).all()
    assert timesteps.min() >= 0 and timesteps.max() < 1000
    assert float(noise_level_to_timestep(torch.tensor(math.log(1e-3) / 4))) == pytest.approx(0, abs=1e-3)
    assert float(noise_level_to_timestep(torch.tensor(math.log(1e2) / 4))) == pytest.approx(1000, abs=1e-3)


def test_ve_and_vp_timesteps_are_monotone_and_land_in_monai_range() -> None:
    ve_sigma = torch.logspace(math.log10(0.02), 2, 200)
    ve_timesteps = ve_noise_level_to_timestep((0.5 * ve_sigma).log())
    vp = VPPrecond(ZeroNetwork())
    vp_timesteps = vp.timestep(vp.coefficients(vp_sigma(torch.linspace(1e-5, 1, 200)))[3])
    for timesteps in (ve_timesteps, vp_timesteps):
        assert (timesteps.diff() > 0).all()
        assert timesteps.min() >= 0 and timesteps.max() < 1000


def test_spade_unet_with_one_hot_label_map_gives_image_shape() -> None:
    torch.manual_seed(0)
    unet = SPADEDiffusionModelUNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        label_nc=5,
        channels=(8, 16),
        attention_levels=(False, True),
        num_res_blocks=1,
        norm_num_groups=8,
        num_head_channels=8,
        spade_intermediate_channels=8,
    )
    precond = EDMPrecond(unet)
    assert precond.conditioning == "spade"
    x = torch.randn(2, 1, 8, 8)
    labels = torch.randint(0, 5, (2, 16, 16))  # label map at twice the latent resolution
    seg = torch.nn.functional.one_hot(labels, 5).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        denoised = precond(x, torch.tensor([0.5, 5.0]), seg)
    assert denoised.shape == (2, 1, 8, 8) and torch.isfinite(denoised).all()


def test_plain_unet_with_concatenated_condition_gives_image_shape() -> None:
    torch.manual_seed(0)
    unet = DiffusionModelUNet(
        spatial_dims=2,
        in_channels=1 + 5,
        out_channels=1,
        channels=(8, 16),
        attention_levels=(False, False),
        num_res_blocks=1,
        norm_num_groups=8,
    )
    precond = build_precond("ve", unet)
    assert precond.conditioning == "concat"
    with torch.no_grad():
        denoised = precond(torch.randn(2, 1, 8, 8), 1.0, torch.rand(2, 5, 8, 8))
    assert denoised.shape == (2, 1, 8, 8)


def test_network_output_of_wrong_shape_raises_shape_mismatch() -> None:
    class TwoChannelNetwork(nn.Module):
        def forward(self, x: Tensor, timesteps: Tensor) -> Tensor:
            return torch.zeros(x.shape[0], 2, *x.shape[2:])

    with pytest.raises(ShapeMismatchError, match="network output"):
        EDMPrecond(TwoChannelNetwork())(torch.randn(2, 1, 4, 4), 1.0)


def test_unknown_kind_or_conditioning_raises_config_key_error_listing_choices() -> None:
    with pytest.raises(ConfigKeyError, match="edm, vp, ve"):
        build_precond("ddpm", ZeroNetwork())
    with pytest.raises(ConfigKeyError, match="spade, concat"):
        EDMPrecond(ZeroNetwork(), conditioning="cross_attention")


def test_round_sigma_is_identity_for_continuous_noise_levels() -> None:
    assert float(EDMPrecond(ZeroNetwork()).round_sigma(0.123)) == pytest.approx(0.123)
