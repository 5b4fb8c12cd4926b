"""Label-map-guided echo generation (Stojanovski et al. 2024): the six generators (SDM, VP, VE, EDM, EDM-L128, EDM-L64),
their Gamma-VAE, sampling, checkpoints, training steps for MONAI engines and PNG sample grids."""

from __future__ import annotations

from echodiff.data.conditioning import CONDITION_CLASSES, camus_labels_of_condition
from echodiff.generation.checkpoints import (
    GeneratorCheckpoint,
    load_autoencoder,
    load_generator,
    save_autoencoder,
    save_generator,
)
from echodiff.generation.generator import LabelToImageGenerator, with_denoiser
from echodiff.generation.inferer import GeneratorInferer
from echodiff.generation.fidelity import LabelFidelityLogger, fixed_condition_maps, label_fidelity
from echodiff.generation.latent_health import HEALTH_LIMITS, LatentHealthLogger, health_problems, latent_health
from echodiff.generation.grids import (
    OVERLAY_COLOURS,
    GeneratedImageWriter,
    ReconstructionGridSaver,
    SampleGridSaver,
    image_grid,
    label_overlay,
    write_png,
    write_reconstruction_grid,
    write_sample_grid,
)
from echodiff.generation.models import (
    DEFAULT_NETWORKS,
    GENERATOR_MODELS,
    LATENT_MODELS,
    NOISE_KINDS,
    PAPER_SCALE_NETWORKS,
    autoencoder_kwargs,
    build_autoencoder,
    build_generator,
)
from echodiff.generation.synthesis import (
    MANIFEST,
    GeneratorFn,
    case_seed,
    generator_fn,
    source_condition_map,
    synthesize_dataset,
    write_manifest,
)
from echodiff.generation.training import (
    AutoencoderEvalStep,
    AutoencoderSaver,
    BestAutoencoderSaver,
    AutoencoderTrainStep,
    DiffusionTrainStep,
    GeneratorSaver,
)

__all__ = [
    "MANIFEST",
    "GeneratorFn",
    "camus_labels_of_condition",
    "case_seed",
    "generator_fn",
    "source_condition_map",
    "synthesize_dataset",
    "write_manifest",
    "CONDITION_CLASSES",
    "DEFAULT_NETWORKS",
    "GENERATOR_MODELS",
    "LATENT_MODELS",
    "NOISE_KINDS",
    "OVERLAY_COLOURS",
    "PAPER_SCALE_NETWORKS",
    "AutoencoderEvalStep",
    "AutoencoderSaver",
    "BestAutoencoderSaver",
    "AutoencoderTrainStep",
    "DiffusionTrainStep",
    "GeneratedImageWriter",
    "GeneratorCheckpoint",
    "GeneratorInferer",
    "GeneratorSaver",
    "LabelToImageGenerator",
    "ReconstructionGridSaver",
    "SampleGridSaver",
    "autoencoder_kwargs",
    "build_autoencoder",
    "build_generator",
    "image_grid",
    "label_overlay",
    "load_autoencoder",
    "load_generator",
    "save_autoencoder",
    "save_generator",
    "write_png",
    "write_reconstruction_grid",
    "write_sample_grid",
    "with_denoiser",
    "LabelFidelityLogger",
    "HEALTH_LIMITS",
    "LatentHealthLogger",
    "health_problems",
    "latent_health",
    "fixed_condition_maps",
    "label_fidelity",
]
