"""The diffusion training loss, as the base model's scheduler defines it.

CogVideoX is a v-prediction model (``prediction_type="v_prediction"``, zero-terminal-SNR betas). Its own fine-tuning
turns the v output into an x0 estimate and weights the x0 error by ``1 / (1 - alpha_bar_t)``::

    x_t      = sqrt(a) x0 + sqrt(1 - a) eps          a = alpha_bar_t
    x0_hat   = sqrt(a) x_t - sqrt(1 - a) v_hat      (scheduler.get_velocity(v_hat, x_t, t))
    loss     = mean( (x0_hat - x0)^2 / (1 - a) )

Since ``x0_hat - x0 = -sqrt(1 - a) (v_hat - v)`` this equals the plain MSE on v, ``mean((v_hat - v)^2)``. The paper
writes the loss as an epsilon-MSE (its Eq. 7); with ``eps_hat - eps = sqrt(a) (v_hat - v)`` the epsilon-loss is
``a * (v-loss)``, i.e. the same minimiser per timestep with a weight that vanishes at the zero-SNR end (t = T-1,
a = 0), where epsilon prediction is undefined. docs/training.md says more.

Schedulers with ``prediction_type="epsilon"`` get the epsilon-MSE and ``"sample"`` the x0-MSE.
"""

from __future__ import annotations

import torch


def diffusion_loss(
    alphas_cumprod: torch.Tensor,
    prediction_type: str,
    model_output: torch.Tensor,
    noisy: torch.Tensor,
    clean: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
) -> torch.Tensor:
    """Per-sample loss (B,) for latents (B, F', C, H', W'), computed in float32.

    ``alphas_cumprod`` is the scheduler's (num_train_timesteps,) tensor; ``prediction_type`` its config value.
    """
    a = alphas_cumprod.to(device=model_output.device, dtype=torch.float32)[timesteps]  # (B,)
    a = a.view(-1, *([1] * (model_output.ndim - 1)))
    output = model_output.float()
    if prediction_type == "v_prediction":
        x0_hat = a.sqrt() * noisy.float() - (1 - a).sqrt() * output
        error = (x0_hat - clean.float()) ** 2 / (1 - a)
    elif prediction_type == "epsilon":
        error = (output - noise.float()) ** 2
    elif prediction_type == "sample":
        error = (output - clean.float()) ** 2
    else:
        raise ValueError(f"prediction_type={prediction_type!r} is not supported; use v_prediction, epsilon or sample")
    return error.flatten(1).mean(dim=1)  # (B,)
