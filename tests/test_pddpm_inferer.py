"""PD-DDPM sampling inferer (echodiff.inferers.pddpm): forward rule of the start point, T' = T is plain DDPM, ensemble
and uncertainty, step grids, oracle recovery of x_0, the denoiser that starts as its pre-segmentation
(echodiff.networks.PresegmentationResidualUNet), and the errors a user sees."""

from __future__ import annotations

import math

import pytest
import torch
from echodiff.errors import ConfigKeyError, ConfigValueError, LabelValueError, MissingFileError, ShapeMismatchError
from echodiff.inferers import (
    PDDPMInferer,
    ensemble_uncertainty,
    mask_to_x0,
    x0_to_probabilities,
)
from echodiff.networks import PresegmentationResidualUNet
from echodiff.schedulers import get_noise_scheduler
from monai.inferers import DiffusionInferer
from monai.networks.nets import DiffusionModelUNet, DynUNet
from monai.networks.schedulers import DDPMScheduler

SIZE = 32


def _mask() -> torch.Tensor:
    """A known (1, 1, SIZE, SIZE) CAMUS-like label map: background, LV cavity block, myocardium ring, LA block."""
    mask = torch.zeros(1, 1, SIZE, SIZE, dtype=torch.long)
    mask[..., 4:20, 8:24] = 2
    mask[..., 6:18, 10:22] = 1
    mask[..., 22:30, 10:22] = 3
    return mask


def _fixed_presegmentation(mask: torch.Tensor):
    """A 'segmenter' whose argmax is `mask` for every image of the batch."""

    def presegment(image: torch.Tensor) -> torch.Tensor:
        return (mask_to_x0(mask, 4) * 5).expand(image.shape[0], -1, -1, -1)

    return presegment


def _tiny_unet(network: type = DiffusionModelUNet, in_channels: int = 5) -> DiffusionModelUNet:
    torch.manual_seed(0)
    return network(
        spatial_dims=2, in_channels=in_channels, out_channels=4, channels=(8, 16), attention_levels=(False, False),
        num_res_blocks=1, norm_num_groups=8, num_head_channels=8,
    ).eval()


def _residual_unet() -> PresegmentationResidualUNet:
    return _tiny_unet(PresegmentationResidualUNet, in_channels=9)


def _segmenter() -> DynUNet:
    return DynUNet(2, 1, 4, kernel_size=[3, 3, 3], strides=[1, 2, 2], upsample_kernel_size=[2, 2], filters=[4, 8, 8])


def _oracle(scheduler, x0: torch.Tensor):
    """A 'network' that predicts the true eps = (x_t - sqrt(ab_t) x_0) / sqrt(1 - ab_t) of a known x_0."""

    def network(model_input: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        alpha_bar = scheduler.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
        x_t = model_input[:, : x0.shape[1]]
        return (x_t - alpha_bar.sqrt() * x0.repeat(x_t.shape[0] // x0.shape[0], 1, 1, 1)) / (1 - alpha_bar).sqrt()

    return network


@pytest.mark.parametrize("kind", ["gaussian", "gamma"])
@pytest.mark.parametrize("t_prime", [50, 300, 500])
def test_start_point_follows_forward_rule_for_known_presegmentation(kind, t_prime):
    scheduler = get_noise_scheduler(kind, "ddpm", num_train_timesteps=1000, schedule="cosine")
    mask = _mask()
    inferer = PDDPMInferer(scheduler, presegmentation=_fixed_presegmentation(mask), t_prime=t_prime, ensemble=64)
    x_start = inferer.start(torch.rand(1, 1, SIZE, SIZE), torch.Generator().manual_seed(0))
    assert x_start.shape == (64, 4, SIZE, SIZE)

    alpha_bar = float(scheduler.alphas_cumprod[t_prime - 1])  # the paper's alpha_bar_T' (MONAI index T' - 1)
    x_pre = mask_to_x0(mask, 4).expand_as(x_start)
    residual = x_start - math.sqrt(alpha_bar) * x_pre
    noise_std = math.sqrt(1 - alpha_bar)
    assert abs(residual.mean().item()) < 4 * noise_std / math.sqrt(residual.numel())
    assert residual.std().item() == pytest.approx(noise_std, rel=0.01)
    for value in (1.0, -1.0):  # per-pixel mean follows the pre-segmentation: +-sqrt(alpha_bar_T')
        assert x_start[x_pre == value].mean().item() == pytest.approx(value * math.sqrt(alpha_bar), abs=0.01)


def test_start_point_uses_alpha_bar_of_the_paper_step_t_prime():
    scheduler = DDPMScheduler(num_train_timesteps=1000, schedule="cosine")
    mask = _mask()
    inferer = PDDPMInferer(scheduler, presegmentation=_fixed_presegmentation(mask), t_prime=300, ensemble=2)
    x_start = inferer.start(torch.rand(1, 1, SIZE, SIZE), torch.Generator().manual_seed(5))
    eps = torch.randn(2, 4, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    alpha_bar = scheduler.alphas_cumprod[299]  # paper step T' = 300 is MONAI timestep 299
    expected = alpha_bar.sqrt() * mask_to_x0(mask, 4) + (1 - alpha_bar).sqrt() * eps
    assert torch.allclose(x_start, expected, atol=1e-6)


def test_t_prime_equal_T_reproduces_plain_ddpm_sampling():
    scheduler = DDPMScheduler(num_train_timesteps=20, schedule="cosine")
    network, image = _tiny_unet(), torch.rand(1, 1, SIZE, SIZE)

    def no_presegmentation(image: torch.Tensor) -> torch.Tensor:
        raise AssertionError("plain DDPM must not run the pre-segmentation")

    inferer = PDDPMInferer(scheduler, presegmentation=no_presegmentation, t_prime=20, ensemble=1)
    torch.manual_seed(7)
    ours = inferer.sample(image, network)[0]

    torch.manual_seed(7)
    noise = torch.randn(1, 4, SIZE, SIZE)
    scheduler.set_timesteps(20)
    plain = DiffusionInferer(scheduler).sample(noise, network, conditioning=image, mode="concat", verbose=False)
    assert torch.equal(ours, plain)


def test_t_prime_equal_T_with_gamma_noise_starts_from_the_gamma_prior():
    scheduler = get_noise_scheduler("gamma", "ddpm", num_train_timesteps=10, schedule="cosine")
    network, image = _tiny_unet(), torch.rand(2, 1, SIZE, SIZE)
    ours = PDDPMInferer(scheduler, t_prime=10, ensemble=1).sample(image, network, torch.Generator().manual_seed(3))[0]

    generator = torch.Generator().manual_seed(3)
    x = scheduler.sample_prior(torch.empty(2, 4, SIZE, SIZE), generator)
    with torch.no_grad():
        for t in range(9, -1, -1):
            eps = network(torch.cat([x, image], dim=1), timesteps=torch.full((2,), t))
            x, _ = scheduler.step(eps, t, x, generator=generator)
    assert torch.equal(ours, x)


@pytest.mark.parametrize("step_rule, t_prime, steps", [("ddpm", 5, None), ("ddim", 300, 7), ("ddim", 1000, 1)])
def test_oracle_noise_prediction_recovers_the_mask_with_zero_uncertainty(step_rule, t_prime, steps):
    scheduler = DDPMScheduler(num_train_timesteps=1000, schedule="cosine")
    mask = _mask()
    wrong_presegmentation = _fixed_presegmentation(torch.zeros_like(mask))  # the diffusion has to fix it
    inferer = PDDPMInferer(scheduler, presegmentation=wrong_presegmentation, t_prime=t_prime, ensemble=3,
                           step_rule=step_rule, steps=steps)
    out = inferer(torch.rand(1, 1, SIZE, SIZE), _oracle(scheduler, mask_to_x0(mask, 4)))
    assert torch.equal(out["pred"].argmax(dim=1, keepdim=True), mask)
    assert out["pred"].min() >= 0 and out["pred"].max() <= 1
    assert out["uncertainty"].abs().max().item() < 1e-5


def test_refining_denoiser_starts_as_its_presegmentation_and_checks_its_input():
    network, x = _residual_unet(), torch.randn(3, 9, SIZE, SIZE)
    assert torch.equal(network(x, torch.tensor([0, 50, 99])), x[:, 5:])  # x_0 = x_pre before training, at every t
    with pytest.raises(ShapeMismatchError, match=r"denoiser input has 5 channels; expected 9 = x_t, image and the"):
        network(torch.randn(1, 5, SIZE, SIZE), torch.tensor([0]))
    with pytest.raises(ConfigValueError, match=r"in_channels=8; expected mask \(4\) \+ image \(>= 1\)"):
        PresegmentationResidualUNet(spatial_dims=2, in_channels=8, out_channels=4, channels=(8, 16),
                                    attention_levels=(False, False), norm_num_groups=8)


@pytest.mark.parametrize("step_rule, steps", [("ddpm", None), ("ddim", 4)])
def test_untrained_refining_denoiser_returns_the_presegmentation_label_map(step_rule, steps):
    """x_0-predicting scheduler, denoiser conditioned on the soft pre-segmentation: PD-DDPM from T' ends where the
    pre-segmentation is, with DDPM and with DDIM steps, and the ensemble members agree."""
    scheduler = get_noise_scheduler("gaussian", "ddpm", num_train_timesteps=100, schedule="cosine",
                                    prediction_type="sample")
    mask, seen = _mask(), []
    network = _residual_unet()
    network.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[1]))
    inferer = PDDPMInferer(scheduler, presegmentation=_fixed_presegmentation(mask), t_prime=30, ensemble=2,
                           step_rule=step_rule, steps=steps, condition_on_presegmentation=True)
    out = inferer(torch.rand(2, 1, SIZE, SIZE), network, torch.Generator().manual_seed(0))
    assert torch.equal(out["pred"].argmax(dim=1, keepdim=True), mask.expand(2, -1, -1, -1))
    assert out["uncertainty"].max().item() < 1e-6
    assert seen == [9] * (steps or 30)


def test_ensemble_output_shapes_and_ranges():
    scheduler = DDPMScheduler(num_train_timesteps=10, schedule="cosine")
    inferer = PDDPMInferer(scheduler, presegmentation=_fixed_presegmentation(_mask()), t_prime=4, ensemble=3)
    image, network = torch.rand(2, 1, SIZE, SIZE), _tiny_unet()
    samples = inferer.sample(image, network, torch.Generator().manual_seed(0))
    assert samples.shape == (3, 2, 4, SIZE, SIZE)
    assert samples.min() >= -1 and samples.max() <= 1  # the last DDPM step returns the clipped x0_hat
    out = inferer(image, network, torch.Generator().manual_seed(0))
    assert out["pred"].shape == (2, 4, SIZE, SIZE) and out["uncertainty"].shape == (2, 1, SIZE, SIZE)
    assert out["uncertainty"].min() >= 0 and out["uncertainty"].max() > 0


def test_seed_makes_every_call_reproducible_whatever_the_global_rng():
    scheduler = DDPMScheduler(num_train_timesteps=10, schedule="cosine")
    image, network = torch.rand(1, 1, SIZE, SIZE), _tiny_unet()
    seeded = PDDPMInferer(scheduler, presegmentation=_fixed_presegmentation(_mask()), t_prime=4, ensemble=2, seed=3)
    first = seeded(image, network)["pred"]
    torch.rand(7)  # move the global RNG on
    assert torch.equal(seeded(image, network)["pred"], first)
    assert torch.equal(seeded(image, network, torch.Generator().manual_seed(3))["pred"], first)
    unseeded = PDDPMInferer(scheduler, presegmentation=_fixed_presegmentation(_mask()), t_prime=4, ensemble=2)
    assert not torch.equal(unseeded(image, network)["pred"], unseeded(image, network)["pred"])


def test_label_map_is_argmax_of_the_ensemble_mean():
    scheduler = DDPMScheduler(num_train_timesteps=10, schedule="cosine")
    inferer = PDDPMInferer(scheduler, presegmentation=_fixed_presegmentation(_mask()), t_prime=6, ensemble=4)
    image, network = torch.rand(1, 1, SIZE, SIZE), _tiny_unet()
    samples = inferer.sample(image, network, torch.Generator().manual_seed(1))
    out = inferer(image, network, torch.Generator().manual_seed(1))
    mean = x0_to_probabilities(samples).mean(dim=0)
    assert torch.equal(out["pred"], mean)
    assert torch.equal(out["pred"].argmax(dim=1), mean.argmax(dim=1))
    members = x0_to_probabilities(samples).argmax(dim=2)  # the members disagree somewhere, so the mean matters
    assert (members != members[:1]).any()


@pytest.mark.parametrize("kind", ["variance", "entropy"])
def test_uncertainty_is_zero_for_one_sample_and_for_agreeing_samples(kind):
    torch.manual_seed(0)
    one = torch.rand(1, 2, 4, 8, 8)
    assert torch.equal(ensemble_uncertainty(one, kind), torch.zeros(2, 1, 8, 8))
    agreeing = one.repeat(5, 1, 1, 1, 1)
    assert ensemble_uncertainty(agreeing, kind).abs().max().item() < 1e-7

    inferer = PDDPMInferer(DDPMScheduler(num_train_timesteps=10), presegmentation=_fixed_presegmentation(_mask()),
                           t_prime=3, ensemble=1, uncertainty=kind)
    out = inferer(torch.rand(1, 1, SIZE, SIZE), _tiny_unet())
    assert torch.equal(out["uncertainty"], torch.zeros(1, 1, SIZE, SIZE))


def test_uncertainty_of_an_even_split_between_two_classes():
    two_members = torch.zeros(2, 1, 4, 1, 1)
    two_members[0, 0, 0] = 1.0  # member 0 says background
    two_members[1, 0, 1] = 1.0  # member 1 says LV cavity
    assert ensemble_uncertainty(two_members, "variance").item() == pytest.approx(0.5)  # 0.25 + 0.25
    assert ensemble_uncertainty(two_members, "entropy").item() == pytest.approx(math.log(2) / math.log(4))


def test_ddim_grid_starts_at_t_prime_and_ends_at_zero():
    scheduler = DDPMScheduler(num_train_timesteps=1000, schedule="cosine")
    inferer = PDDPMInferer(scheduler, presegmentation=_fixed_presegmentation(_mask()), t_prime=300, step_rule="ddim",
                           steps=10)
    pairs = inferer.reverse_steps()
    assert len(pairs) == 10 and pairs[0][0] == 299 and pairs[-1] == (0, -1)
    assert all(t > t_prev and t_prev == following for (t, t_prev), (following, _) in zip(pairs, pairs[1:]))
    ddpm = PDDPMInferer(scheduler, presegmentation=_fixed_presegmentation(_mask()), t_prime=300).reverse_steps()
    assert len(ddpm) == 300 and ddpm[0] == (299, 298) and ddpm[-1] == (0, -1)


def test_presegmentation_checkpoint_loads_on_cpu(tmp_path):
    trained = _segmenter()
    torch.nn.init.constant_(trained.output_block.conv.conv.bias, 0.25)
    for name, content in (("raw.pt", trained.state_dict()), ("saver.pt", {"model": trained.state_dict()})):
        torch.save(content, tmp_path / name)
        fresh = _segmenter()
        inferer = PDDPMInferer(DDPMScheduler(num_train_timesteps=10), presegmentation=fresh,
                               presegmentation_checkpoint=tmp_path / name, t_prime=2, ensemble=1)
        inferer.presegment(torch.rand(1, 1, 16, 16))
        assert torch.equal(fresh.output_block.conv.conv.bias, torch.full((4,), 0.25))


def test_bad_images_are_refused_with_the_expected_shape():
    inferer = PDDPMInferer(DDPMScheduler(num_train_timesteps=10), presegmentation=_fixed_presegmentation(_mask()),
                           t_prime=2, ensemble=1, size_divisible=8)
    with pytest.raises(ShapeMismatchError, match=r"shape \(1, 3, 32, 32\); expected \(B, 1, H, W\)"):
        inferer(torch.rand(1, 3, SIZE, SIZE), _tiny_unet())
    with pytest.raises(ShapeMismatchError, match="divisible by 8"):
        inferer(torch.rand(1, 1, 30, 30), _tiny_unet())
    with pytest.raises(ShapeMismatchError, match=r"expected \(B, 1, H, W\)"):
        inferer(torch.rand(1, SIZE, SIZE), _tiny_unet())
    with pytest.raises(ShapeMismatchError, match=r"pre-segmentation output has shape \(1, 3, 32, 32\)"):
        PDDPMInferer(DDPMScheduler(num_train_timesteps=10), presegmentation=lambda x: torch.rand(1, 3, SIZE, SIZE),
                     t_prime=2).presegment(torch.rand(1, 1, SIZE, SIZE))


def test_bad_settings_are_refused_with_clear_messages(tmp_path):
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    preseg = _fixed_presegmentation(_mask())
    with pytest.raises(ConfigValueError, match=r"t_prime=1001 is outside 1..T=1000"):
        PDDPMInferer(scheduler, presegmentation=preseg, t_prime=1001)
    with pytest.raises(ConfigValueError, match=r"t_prime=0 is outside 1..T=1000"):
        PDDPMInferer(scheduler, presegmentation=preseg, t_prime=0)
    with pytest.raises(ConfigValueError, match=r"ensemble=0; expected a whole number of samples >= 1"):
        PDDPMInferer(scheduler, presegmentation=preseg, ensemble=0)
    with pytest.raises(ConfigValueError, match=r"t_prime=300 < T=1000 starts from a pre-segmentation"):
        PDDPMInferer(scheduler, t_prime=300)
    with pytest.raises(ConfigValueError, match=r"condition_on_presegmentation=True conditions every step on the"):
        PDDPMInferer(scheduler, t_prime=1000, condition_on_presegmentation=True)
    with pytest.raises(ConfigValueError, match=r"steps=50 with step_rule='ddpm'"):
        PDDPMInferer(scheduler, presegmentation=preseg, t_prime=300, steps=50)
    with pytest.raises(ConfigValueError, match=r"steps=400; expected 1..t_prime=300"):
        PDDPMInferer(scheduler, presegmentation=preseg, t_prime=300, step_rule="ddim", steps=400)
    with pytest.raises(ConfigKeyError, match=r"unknown step_rule 'heun'; expected one of ddpm, ddim"):
        PDDPMInferer(scheduler, presegmentation=preseg, step_rule="heun")
    with pytest.raises(ConfigKeyError, match=r"unknown uncertainty 'std'; expected one of variance, entropy"):
        PDDPMInferer(scheduler, presegmentation=preseg, uncertainty="std")

    missing = tmp_path / "models" / "model.pt"
    inferer = PDDPMInferer(scheduler, presegmentation=_segmenter(), presegmentation_checkpoint=missing, t_prime=300)
    with pytest.raises(MissingFileError, match=rf"pre-segmentation checkpoint {missing} does not exist"):
        inferer(torch.rand(1, 1, 16, 16), _tiny_unet())


def test_mask_to_x0_scales_one_hot_to_plus_minus_one_and_checks_labels():
    x0 = mask_to_x0(_mask(), 4)
    assert x0.shape == (1, 4, SIZE, SIZE) and set(x0.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(x0.argmax(dim=1, keepdim=True), _mask())
    assert torch.equal(x0_to_probabilities(x0).sum(dim=1), torch.ones(1, SIZE, SIZE))
    with pytest.raises(LabelValueError, match=r"values \[0, 1, 5\]; expected class indices 0..3"):
        mask_to_x0(torch.tensor([0, 1, 5]).view(1, 1, 1, 3), 4)
    with pytest.raises(ShapeMismatchError, match=r"expected \(B, 1, H, W\)"):
        mask_to_x0(torch.zeros(4, 4, dtype=torch.long), 4)
