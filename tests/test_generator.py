"""Tests for echodiff.generation.generator and .training: conditioning, sampling errors, checkpoints, training steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from echodiff.errors import (
    ConfigKeyError,
    ConfigValueError,
    CorruptFileError,
    LabelValueError,
    MissingFileError,
    ShapeMismatchError,
    user_error,
)
from echodiff.generation import (
    AutoencoderSaver,
    AutoencoderTrainStep,
    DiffusionTrainStep,
    GeneratorCheckpoint,
    GeneratorInferer,
    GeneratorSaver,
    autoencoder_kwargs,
    build_autoencoder,
    load_autoencoder,
    load_generator,
    build_generator,
    save_autoencoder,
    save_generator,
    with_denoiser,
)
from echodiff.losses import GammaVAELoss
from echodiff.samplers import ChurnSpec
from ignite.engine import Events
from monai.bundle import ConfigParser
from monai.data import DataLoader
from monai.engines import SupervisedTrainer
from monai.inferers import SimpleInferer
from test_generation_models import SIZE, build, fan_condition_map

TINY_NETWORK = dict(channels=(8, 16), attention_levels=(False, True), num_res_blocks=1, num_head_channels=8,
                    norm_num_groups=8, spade_intermediate_channels=8)  # fmt: skip
TINY_AUTOENCODER = dict(channels=(8, 16, 16), num_res_blocks=1, norm_num_groups=8)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def echo_images(cond: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Speckle-like images in [0, 1] for a condition map: dark LV cavity, bright myocardium, zero outside the sector."""
    speckle = torch.rand(cond.shape, generator=seeded(seed))
    brightness = torch.tensor([0.0, 0.1, 0.4, 0.8, 0.15])[cond]
    return (brightness + 0.2 * speckle) * (cond > 0)


def test_condition_one_hot_encodes_the_five_classes():
    cond = fan_condition_map(1)
    one_hot = build("edm").condition(cond)
    assert one_hot.shape == (1, 5, SIZE, SIZE) and one_hot.dtype == torch.float32
    assert torch.equal(one_hot.argmax(dim=1, keepdim=True), cond) and torch.equal(one_hot.sum(dim=1), torch.ones(1, SIZE, SIZE))


@pytest.mark.parametrize("model", ["edm", "sdm"])
def test_sample_refuses_hand_made_maps_outside_0_to_4_naming_the_values_found(model):
    generator, cond = build(model), fan_condition_map(1)
    cond[0, 0, 0, 0] = 7
    with pytest.raises(LabelValueError, match=r"condition map has values \{0, 1, 2, 3, 4, 7\}; expected condition "
                       r"classes 0..4 \(0 outside sector, 1 LV cavity, 2 in-sector tissue, 3 myocardium, 4 left atrium\)"):  # fmt: skip
        generator.sample(cond, steps=1)
    with pytest.raises(LabelValueError, match=r"\{0, 1.5, 2\}"):
        generator.sample(torch.tensor([0.0, 1.5, 2.0]).repeat(SIZE * SIZE)[: SIZE * SIZE].reshape(1, 1, SIZE, SIZE))


def test_condition_refuses_other_sizes_and_layouts_naming_both_sizes():
    generator = build("edm")
    with pytest.raises(ShapeMismatchError, match="condition map is 64 x 64; generator 'edm' makes 32 x 32 images"):
        generator.condition(fan_condition_map(1, size=64))
    with pytest.raises(ShapeMismatchError, match=r"condition map has shape \(1, 32, 32\); expected \(B, 1, H, W\)"):
        generator.condition(fan_condition_map(1)[:, 0])


def test_unknown_sampler_names_raise_config_key_error_with_the_choices():
    cond = fan_condition_map(1)
    with pytest.raises(ConfigKeyError, match=r"unknown sampler 'ddpm'; expected one of \['dpmpp_2m', 'euler', 'heun'\]"):
        build("edm").sample(cond, sampler="ddpm", steps=2)
    with pytest.raises(ConfigKeyError, match="sampler 'heun' does not apply to the DDPM-type model 'sdm'; expected one "
                       "of ddpm, ddim"):  # fmt: skip
        build("sdm").sample(cond, sampler="heun")


def test_sdm_refuses_ddpm_with_fewer_steps_churn_and_zero_steps():
    generator, cond = build("sdm"), fan_condition_map(1)
    with pytest.raises(ConfigValueError, match="steps=2 with sampler 'ddpm': DDPM takes every one of the T=4 steps"):
        generator.sample(cond, sampler="ddpm", steps=2)
    with pytest.raises(ConfigValueError, match="applies to the EDM-family samplers"):
        generator.sample(cond, churn=ChurnSpec.paper_defaults())
    with pytest.raises(ConfigValueError, match="steps=0; expected a whole number of sampling steps >= 1"):
        build("edm").sample(cond, steps=0)


def test_same_seed_gives_the_same_stochastic_samples_and_another_seed_others():
    generator, cond = build("edm"), fan_condition_map(1)
    churn = ChurnSpec.paper_defaults()
    first, _ = generator.sample(cond, steps=2, churn=churn, generator=seeded(0))
    again, _ = generator.sample(cond, steps=2, churn=churn, generator=seeded(0))
    other, _ = generator.sample(cond, steps=2, churn=churn, generator=seeded(1))
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize(("model", "options"), [("edm_l64", {"latent_scale": 0.8}), ("sdm", {"noise": "gamma"})])
def test_save_load_round_trip_gives_bit_exact_samples(tmp_path, model, options):
    generator, cond = build(model, **options), fan_condition_map()
    with torch.no_grad():  # make the zero-initialised output layers matter
        for parameter in generator.denoiser.parameters():
            parameter.add_(0.01 * torch.randn(parameter.shape, generator=seeded(1)))
    path = save_generator(tmp_path / "generator.pt", generator, extra={"epoch": 3})
    loaded = load_generator(path)
    assert (loaded.model, loaded.image_size, loaded.noise) == (model, SIZE, options.get("noise", "gaussian"))
    assert loaded.latent_scale == options.get("latent_scale", 1.0) and loaded.build_kwargs == generator.build_kwargs
    steps = {"steps": 2} if model != "sdm" else {}
    before, nfe = generator.sample(cond, generator=seeded(7), **steps)
    after, nfe_loaded = loaded.sample(cond, generator=seeded(7), **steps)
    assert torch.equal(before, after) and nfe == nfe_loaded and float(before.std()) > 0
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["format"] == "echodiff.generator" and checkpoint["epoch"] == 3
    assert checkpoint["latent_scale"] == options.get("latent_scale", 1.0)


def test_checkpoints_hold_plain_data_only_and_refuse_objects_and_reserved_extras(tmp_path):
    generator = build("edm_l64")
    checkpoint = torch.load(save_generator(tmp_path / "g.pt", generator), weights_only=True)

    def plain(value: object) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, (str, int, float, bool, torch.Tensor))

    assert plain(checkpoint) and checkpoint["build_kwargs"]["autoencoder"]["channels"] == [32, 64, 64]
    with pytest.raises(ConfigValueError, match="extra holds .*checkpoints store only tensors, numbers, strings"):
        save_generator(tmp_path / "g.pt", generator, extra={"churn": ChurnSpec()})
    with pytest.raises(ConfigValueError, match=r"extra keys \['latent_scale'\] are reserved"):
        save_generator(tmp_path / "g.pt", generator, extra={"latent_scale": 2.0})


def test_load_generator_names_a_missing_file(tmp_path):
    with pytest.raises(MissingFileError, match=f"generator checkpoint {tmp_path}/absent.pt does not exist; train one "
                       "with configs/train_diffusion.json"):  # fmt: skip
        load_generator(tmp_path / "absent.pt")


def test_load_generator_refuses_files_that_are_not_generator_checkpoints(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(CorruptFileError, match=f"{text} cannot be read as a torch checkpoint"):
        load_generator(text)
    monai_style = tmp_path / "model.pt"
    torch.save({"model": build("edm").state_dict()}, monai_style)
    with pytest.raises(CorruptFileError, match=r"is not a generator checkpoint: it holds a dict with keys \['model'\]"):
        load_generator(monai_style)
    autoencoder = save_autoencoder(tmp_path / "ae.pt", build_autoencoder("edm_l64"), autoencoder_kwargs("edm_l64"))
    with pytest.raises(CorruptFileError, match=r"it holds format 'echodiff.gamma_vae' \(a Gamma-VAE autoencoder"):
        load_generator(autoencoder)


def test_load_generator_refuses_a_state_dict_that_does_not_match_its_recorded_config(tmp_path):
    path = save_generator(tmp_path / "g.pt", build("edm"))
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["build_kwargs"]["network"]["channels"] = [32, 64, 128]
    torch.save(checkpoint, tmp_path / "resized.pt")
    with pytest.raises(CorruptFileError, match=r"resized.pt: its state_dict does not match the 'edm' generator its "
                       r"build_kwargs describe; .*shapes \(\d+\): denoiser"):  # fmt: skip
        load_generator(tmp_path / "resized.pt")
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["state_dict"]["denoiser.model.out.2.conv.bias"]
    torch.save(checkpoint, tmp_path / "truncated.pt")
    with pytest.raises(CorruptFileError, match=r"missing keys \(1\): denoiser.model.out.2.conv.bias"):
        load_generator(tmp_path / "truncated.pt")
    checkpoint["build_kwargs"]["model"] = "ldm"
    torch.save(checkpoint, tmp_path / "unknown.pt")
    with pytest.raises(CorruptFileError, match="records build_kwargs that build no generator .*unknown generator model"):
        load_generator(tmp_path / "unknown.pt")


def test_latent_models_encode_with_the_posterior_mean_even_in_training_mode():
    generator, cond = build("edm_l64"), fan_condition_map()
    generator.train()  # in training mode the Gamma-VAE's forward would draw a posterior sample
    images, sector = echo_images(cond), (cond > 0).float()
    first, second = generator.to_diffusion(images, sector), generator.to_diffusion(images, sector)
    assert torch.equal(first, second) and first.shape == (2, 1, SIZE // 4, SIZE // 4)
    vae = generator.autoencoder
    mean = vae.posterior_mean(*vae.encode(images)) * vae.latent_mask(sector)
    torch.testing.assert_close(first, (2 * mean - 1).clamp(-1, 1))
    assert torch.equal(generator.training_loss(images, cond, seeded(3)), generator.training_loss(images, cond, seeded(3)))


@pytest.mark.parametrize("model", ["edm", "edm_l64"])
def test_a_few_adam_steps_reduce_the_training_loss_on_a_fixed_batch(model):
    generator = build(model, network=TINY_NETWORK, autoencoder=TINY_AUTOENCODER if model == "edm_l64" else None)
    cond = fan_condition_map()
    images = echo_images(cond)

    def mean_loss() -> float:  # the same 4 noise draws before and after training
        with torch.no_grad():
            return sum(float(generator.training_loss(images, cond, seeded(s))) for s in range(4)) / 4

    optimizer = torch.optim.Adam(generator.denoiser.parameters(), lr=3e-3)
    before = mean_loss()
    torch.manual_seed(0)
    for _ in range(10):
        optimizer.zero_grad()
        generator(images, cond).backward()
        optimizer.step()
    assert mean_loss() < 0.85 * before


def test_autoencoder_checkpoint_round_trip_and_loading_into_a_latent_generator(tmp_path):
    torch.manual_seed(1)
    vae = build_autoencoder("edm_l64")
    path = save_autoencoder(tmp_path / "autoencoder.pt", vae, autoencoder_kwargs("edm_l64"), extra={"epoch": 2})
    loaded = load_autoencoder(path)
    assert all(torch.equal(a, b) for a, b in zip(vae.state_dict().values(), loaded.state_dict().values()))
    generator = build("edm_l64")
    generator.load_autoencoder_weights(path)
    assert all(torch.equal(a, b) for a, b in zip(vae.state_dict().values(), generator.autoencoder.state_dict().values()))
    generator_path = save_generator(tmp_path / "generator.pt", build("edm_l64"))
    replaced = load_generator(generator_path, autoencoder_path=path)
    assert all(torch.equal(a, b) for a, b in zip(vae.state_dict().values(), replaced.autoencoder.state_dict().values()))

    other = save_autoencoder(tmp_path / "other.pt", build_autoencoder("edm_l64", {"num_res_blocks": 2}),
                             autoencoder_kwargs("edm_l64", {"num_res_blocks": 2}))  # fmt: skip
    with pytest.raises(CorruptFileError, match=r"other.pt holds a Gamma-VAE whose \['num_res_blocks'\] are \[2\]; "
                       r"generator 'edm_l64' was built with \[1\]"):  # fmt: skip
        generator.load_autoencoder_weights(other)
    with pytest.raises(ConfigValueError, match="pixel-space model 'edm'"):
        build("edm").load_autoencoder_weights(path)
    with pytest.raises(MissingFileError, match="Gamma-VAE autoencoder checkpoint .*absent.pt does not exist; train it "
                       "first with configs/train_autoencoder.json"):  # fmt: skip
        generator.load_autoencoder_weights(tmp_path / "absent.pt")


def test_generator_checkpoint_loads_lazily_and_the_inferer_reproduces_seeded_sampling(tmp_path):
    lazy = GeneratorCheckpoint(tmp_path / "later.pt")  # building it needs no file, as bundle property checks do
    cond = fan_condition_map()
    with pytest.raises(MissingFileError, match="later.pt does not exist"):
        lazy.sample(cond)
    generator = build("edm")
    save_generator(tmp_path / "later.pt", generator)
    inferer = GeneratorInferer(steps=2, seed=5)
    images = inferer(cond, lazy)
    expected, nfe = generator.sample(cond, steps=2, generator=seeded(5))
    assert torch.equal(images, expected) and inferer.nfe == nfe == 3



def _inference_network(**overrides) -> GeneratorCheckpoint:
    """The `network` of the generation bundle's inference.json with command-line style overrides."""
    root = Path(__file__).resolve().parents[1] / "bundles" / "echo_ldm_generation"
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser.update({"bundle_root": str(root), "dataset_dir": "unused", "device": "$torch.device('cpu')", **overrides})
    return parser.get_parsed_content("network")


def test_inference_with_an_unknown_model_lists_the_known_ones_and_another_models_checkpoint_is_refused(tmp_path):
    with pytest.raises(RuntimeError) as unknown:  # MONAI's config parser wraps our error
        _inference_network(model="foo")
    assert str(user_error(unknown.value)) == ("unknown generator model 'foo'; expected one of sdm, vp, ve, edm, "
                                              "edm_l128, edm_l64")  # fmt: skip
    path = save_generator(tmp_path / "generator_edm.pt", build("edm"))
    with pytest.raises(ConfigValueError, match=rf"^generator checkpoint {path} holds a 'edm' generator, not the "
                       r"'edm_l64' asked for; run it with --model edm, or point --generator_path at a 'edm_l64' "
                       r"generator$"):  # fmt: skip
        _inference_network(generator_path=str(path)).sample(fan_condition_map())
    assert _inference_network(generator_path=str(path), model="edm").generator.model == "edm"

def _loader(cond: torch.Tensor) -> DataLoader:
    items = [{"image": echo_images(c[None])[0], "cond": c, "view": ("2CH", "4CH")[i % 2]} for i, c in enumerate(cond)]
    return DataLoader(items, batch_size=2)


def test_diffusion_train_step_trains_through_a_monai_trainer_and_the_saver_writes_a_loadable_generator(tmp_path):
    generator = build("edm", network=TINY_NETWORK, view_condition=True)  # the batches' "view" reaches the loss
    optimizer = torch.optim.Adam(generator.denoiser.parameters(), lr=1e-3)
    untrained = {k: v.clone() for k, v in generator.state_dict().items()}
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=2, train_data_loader=_loader(fan_condition_map(4)), network=generator,
        optimizer=optimizer, loss_function=generator.training_loss, inferer=SimpleInferer(),
        iteration_update=DiffusionTrainStep(), train_handlers=[GeneratorSaver(tmp_path / "g.pt", interval=1)],
    )  # fmt: skip
    trainer.run()
    assert trainer.state.iteration == 4 and float(trainer.state.output[0]["loss"]) > 0  # decollated output
    assert not torch.equal(generator.state_dict()["denoiser.model.out.2.conv.weight"], untrained["denoiser.model.out.2.conv.weight"])
    loaded = load_generator(tmp_path / "g.pt")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in generator.state_dict().items())
    assert torch.load(tmp_path / "g.pt", weights_only=True)["epoch"] == 2


def test_autoencoder_train_step_counts_the_warm_up_in_epochs_and_the_saver_writes_the_last_weights(tmp_path):
    torch.manual_seed(0)
    kwargs = autoencoder_kwargs("edm_l64", TINY_AUTOENCODER)
    vae = build_autoencoder("edm_l64", TINY_AUTOENCODER)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=2, train_data_loader=_loader(fan_condition_map(2)), network=vae,
        optimizer=torch.optim.Adam(vae.parameters(), lr=1e-3), loss_function=GammaVAELoss(warmup_epochs=1),
        inferer=SimpleInferer(), iteration_update=AutoencoderTrainStep(),
        train_handlers=[AutoencoderSaver(tmp_path / "last.pt", kwargs)],
    )  # fmt: skip
    latent_terms = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: latent_terms.append(e.state.output[0]["loss_latent"]))
    trainer.run()
    assert latent_terms[0] == 0 and latent_terms[1] > 0  # epoch 1 is warm-up epoch 0; the latent term starts at 1
    assert len(trainer.state.output) == 2 and trainer.state.output[0]["pred"].shape == (1, SIZE, SIZE)
    loaded = load_autoencoder(tmp_path / "last.pt")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in vae.state_dict().items())


def test_per_image_start_noise_makes_batched_sampling_equal_sampling_each_image_alone():
    generator = build("edm_l64").eval()
    cond = fan_condition_map(batch=3)
    shape = generator.diffusion_shape(cond)
    noise = torch.randn(shape, generator=seeded(7))
    with torch.no_grad():
        batch, nfe = generator.sample(cond, steps=2, noise=noise)
        alone = torch.cat([generator.sample(cond[b : b + 1], steps=2, noise=noise[b : b + 1])[0] for b in range(3)])
    assert nfe == 3 and torch.allclose(batch, alone, atol=1e-5)
    with pytest.raises(ConfigValueError, match="start noise"):
        generator.sample(cond, steps=2, noise=noise[:, :, :2])


@pytest.mark.parametrize(("model", "options"), [
    ("sdm", {}),
    ("sdm", {"noise": "gamma"}),
    ("edm", {"churn": ChurnSpec(S_churn=40.0, S_min=0.0, S_max=1e3)}),
])
def test_one_generator_per_image_makes_stochastic_batches_equal_images_sampled_alone(model, options):
    """DDPM (Gaussian and Gamma noise) and churned Heun draw noise at every step; with one generator per image, a batch
    equals each image sampled alone from its own generator (what dataset synthesis relies on)."""
    churn = options.pop("churn", None)
    generator = build(model, **options).eval()
    cond = fan_condition_map(batch=3)
    steps = {"steps": 2} if model == "edm" else {}
    with torch.no_grad():
        batch, _ = generator.sample(cond, churn=churn, generator=[seeded(s) for s in (4, 5, 6)], **steps)
        alone = torch.cat([generator.sample(cond[b : b + 1], churn=churn, generator=seeded(s), **steps)[0]
                           for b, s in enumerate((4, 5, 6))])
        other, _ = generator.sample(cond, churn=churn, generator=[seeded(s) for s in (4, 5, 7)], **steps)
    assert torch.allclose(batch, alone, atol=1e-5)
    assert torch.allclose(other[:2], batch[:2], atol=1e-5)  # image b depends on its own generator only
    assert not torch.allclose(other[2], batch[2], atol=1e-3)
    with pytest.raises(ShapeMismatchError, match="one per batch item"):
        generator.sample(cond, churn=churn, generator=[seeded(0)], **steps)


def test_with_denoiser_samples_with_the_other_weights_and_shares_the_autoencoder():
    import copy

    generator = build("edm_l64").eval()
    other = copy.deepcopy(generator.denoiser)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    twin = with_denoiser(generator, other)
    assert twin.autoencoder is generator.autoencoder and twin.denoiser is other
    cond = fan_condition_map()
    a, _ = generator.sample(cond, steps=2, generator=torch.Generator().manual_seed(0))
    b, _ = twin.sample(cond, steps=2, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(a, b)
    with pytest.raises(ConfigValueError, match="denoiser is a Linear"):
        with_denoiser(generator, torch.nn.Linear(1, 1))


def test_loss_args_set_the_edm_noise_level_distribution_and_unknown_ones_are_refused():
    generator = build_generator("edm", SIZE, network=TINY_NETWORK, loss={"P_mean": 0.5, "P_std": 0.1})
    sigma = generator.loss.sample_sigma(4096, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert abs(float(sigma.log().mean()) - 0.5) < 0.01
    with pytest.raises(ConfigKeyError, match="loss=.*does not fit the loss of model 'edm'"):
        build_generator("edm", SIZE, network=TINY_NETWORK, loss={"P_median": 0.5})
    with pytest.raises(ConfigValueError, match="trains with the DDPM eps loss"):
        build_generator("sdm", SIZE, network=TINY_NETWORK, loss={"P_mean": 0.5})


def _randomised(generator):
    """`generator` with every denoiser weight drawn at random: MONAI zero-initialises the UNet's output convolutions,
    so an untrained UNet ignores its class embedding."""
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in generator.denoiser.parameters():
            parameter.normal_(0, 0.3)
    return generator.eval()


@pytest.mark.parametrize("model", ["edm", "sdm"])
def test_the_view_reaches_the_unet_as_its_class_label_and_changes_the_sample_with_fixed_noise(model):
    generator = _randomised(build(model, network=TINY_NETWORK, view_condition=True))
    unet = generator.denoiser.model if model == "edm" else generator.denoiser
    assert unet.num_class_embeds == 2 and generator.build_kwargs["view_condition"] is True
    seen = []
    unet.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["class_labels"]), with_kwargs=True)
    cond = fan_condition_map(2)
    noise = torch.randn(generator.diffusion_shape(cond), generator=seeded(3)) if model == "edm" else None

    def sample(views):
        return generator.sample(cond, steps=2 if model == "edm" else None, generator=seeded(3), noise=noise,
                                views=views)[0]  # fmt: skip

    two_chamber, four_chamber, mixed = sample("2CH"), sample(["4CH", "4CH"]), sample(["2CH", 1])
    assert seen[0].tolist() == [0, 0] and seen[-1].tolist() == [0, 1]
    assert (two_chamber - four_chamber).abs().max() > 1e-2
    assert torch.equal(mixed[0], two_chamber[0]) and torch.allclose(mixed[1], four_chamber[1], atol=1e-5)
    seen.clear()
    generator.training_loss(echo_images(cond), cond, seeded(0), views=["4CH", "2CH"])
    assert seen[0].tolist() == [1, 0]


def test_a_view_conditioned_generator_without_views_or_with_bad_ones_names_what_it_expects():
    generator, cond = build("edm", network=TINY_NETWORK, view_condition=True), fan_condition_map(2)
    expected = r"^generator 'edm' is conditioned on the view: pass views, one per map \(2CH or 4CH, or their classes"
    with pytest.raises(ConfigValueError, match=expected):
        generator.sample(cond, steps=1)
    with pytest.raises(ConfigValueError, match=expected):
        generator.training_loss(echo_images(cond), cond)
    with pytest.raises(ConfigValueError, match=r"^views 'PLAX' is not a view; expected one of '2CH' \(or 0\), '4CH'"):
        generator.sample(cond, steps=1, views=["2CH", "PLAX"])
    with pytest.raises(ShapeMismatchError, match=r"^3 views for 2 condition maps; expected one per map or one for all"):
        generator.sample(cond, steps=1, views=["2CH", "4CH", "2CH"])


def test_a_view_free_checkpoint_loads_samples_and_says_once_that_the_views_given_are_unused(tmp_path, caplog):
    path = save_generator(tmp_path / "generator_edm.pt", build("edm", network=TINY_NETWORK))
    assert "view_condition" not in torch.load(path, weights_only=True)["build_kwargs"]  # as written before views
    generator, cond = load_generator(path), fan_condition_map(2)
    assert not generator.view_conditioned
    reference, _ = generator.sample(cond, steps=2, generator=seeded(4))
    with caplog.at_level("WARNING", logger="echodiff.generation.generator"):
        first, _ = generator.sample(cond, steps=2, generator=seeded(4), views=["2CH", "4CH"])
        second = GeneratorInferer(steps=2, seed=4)(cond, generator, views=["4CH", "4CH"])
    assert torch.equal(first, reference) and torch.equal(second, reference)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["generator 'edm' was trained without the view (no view_condition): the views given are unused"]
