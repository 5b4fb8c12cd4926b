"""The one stochastic-churn helper shared by the samplers (Karras et al. 2022, Alg. 2, lines 4-6)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from echodiff import rng
from echodiff.rng import Generators


@dataclass(frozen=True)
class ChurnSpec:
    """Karras et al. 2022, Alg. 2: raise sigma to sigma_hat = sigma (1 + gamma) by adding fresh noise.

    gamma = min(S_churn / N, sqrt(2) - 1) when S_min <= sigma <= S_max, else 0. The default adds no noise
    (the deterministic "ODE" samplers).
    """

    S_churn: float = 0.0
    S_min: float = 0.0
    S_max: float = math.inf
    S_noise: float = 1.0

    @classmethod
    def paper_defaults(cls) -> ChurnSpec:
        """Stochastic-sampler settings of Karras et al. 2022: S_churn 40, S_min 0.02, S_max 100, S_noise 1.003."""
        return cls(S_churn=40.0, S_min=0.02, S_max=100.0, S_noise=1.003)

    def gamma(self, sigma: float, n_steps: int) -> float:
        """Alg. 2's gamma_i: the churn factor for the current sigma in an N-step schedule."""
        if self.S_min <= sigma <= self.S_max:
            return min(self.S_churn / n_steps, math.sqrt(2) - 1)
        return 0.0

    def apply(
        self, x: torch.Tensor, sigma: float, n_steps: int, generator: Generators = None
    ) -> tuple[torch.Tensor, float]:
        """Alg. 2, lines 4-6: x_hat = x + sqrt(sigma_hat^2 - sigma^2) S_noise n, n ~ N(0, I); returns x_hat, sigma_hat.

        Draws no random numbers when gamma = 0, so deterministic samplers consume no generator state.
        """
        gamma = self.gamma(sigma, n_steps)
        if gamma == 0:
            return x, sigma
        sigma_hat = sigma * (1 + gamma)
        noise = rng.randn(x.shape, generator, x.dtype, x.device)
        return x + math.sqrt(sigma_hat**2 - sigma**2) * self.S_noise * noise, sigma_hat
