"""The VAE notebook's exercises: the KL of two diagonal Gaussians, the reparameterised sample, the IW bound.

- ``kl_two_gaussians``: ``answer(mu_q, log_var_q, mu_p, log_var_p) -> (B,)``, KL(q || p) of two diagonal
  Gaussians given as (B, D) means and log-variances; graded against the library's
  ``kl_to_standard_normal`` where p = N(0, I), and against a Monte-Carlo estimate of
  E_q[log q(z) - log p(z)] for a general p.
- ``reparameterize``: ``answer(mu, log_var) -> z``, one z ~ N(mu, exp(log_var)) per element, drawn as
  mu + sigma * eps (Kingma & Welling 2014, eq. 10); graded by the moments of z over many rows and by the
  gradient of E[z^2] with respect to mu and log_var, which must reach both (2 mu and exp(log_var)).
- ``iw_bound``: ``answer(log_w) -> (B,)``, the importance-weighted bound log (1/k) sum_i w_i from log
  weights (B, k) (Burda et al. 2016, eq. 8); graded against the definition in float64 on small weights,
  and against ``VAE.log_prob`` on a small random VAE's own log weights (thousands of nats below 0, where exp
  underflows).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from genzoo.exercises import mismatch
from genzoo.models.vae import VAE, VAEConfig, kl_to_standard_normal
from genzoo.specs import ImageSpec


def _close(actual: Tensor, expected: Tensor, rtol: float = 1e-4, atol: float = 1e-4) -> bool:
    return (isinstance(actual, Tensor) and actual.shape == expected.shape
            and bool(torch.allclose(actual.detach().double(), expected.double(), rtol=rtol, atol=atol)))


# ---------------------------------------------------------------------------------------------
# kl_two_gaussians: KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2)), summed over the D dimensions


def _kl(mu_q: Tensor, lv_q: Tensor, mu_p: Tensor, lv_p: Tensor, double_log_var: bool = False,
        mean_term_scaled: bool = True) -> Tensor:
    """The closed form (float64), or one of its typical misreadings (used only to name a mistake)."""
    mu_q, lv_q, mu_p, lv_p = (t.double() for t in (mu_q, lv_q, mu_p, lv_p))
    if double_log_var:  # log_var read as log sigma: the variance becomes exp(2 log_var)
        lv_q, lv_p = 2 * lv_q, 2 * lv_p
    mean_term = (mu_q - mu_p) ** 2 / (lv_p.exp() if mean_term_scaled else 1.0)
    return 0.5 * (lv_p - lv_q + lv_q.exp() / lv_p.exp() + mean_term - 1).sum(-1)


def _name_kl_mistake(actual: Tensor, mu_q: Tensor, lv_q: Tensor, mu_p: Tensor, lv_p: Tensor) -> str | None:
    B, D = mu_q.shape
    right = _kl(mu_q, lv_q, mu_p, lv_p)
    if actual.shape == (B, D):
        return (f"your KL has shape {(B, D)}, one number per latent dimension: sum over the D dimensions "
                f"(a diagonal Gaussian's KL is the sum of D one-dimensional KLs), one number per row (B,)")
    if actual.shape != (B,):
        return f"your KL has shape {tuple(actual.shape)}: return one number per row, shape ({B},)"
    if _close(actual, right):
        return None
    wrong = [
        (2 * right, "your KL is twice the right one: the formula has a factor 1/2 in front of the sum"),
        (0.5 * right, "your KL is half the right one: the 1/2 appears once, in front of the sum"),
        (_kl(mu_p, lv_p, mu_q, lv_q),
         "that is KL(p || q), the other direction: the KL is not symmetric, and the VAE's is under q"),
        (right + D / 2, "your KL is D/2 too large: each dimension's term has a -1 in it"),
        (_kl(mu_q, lv_q, mu_p, lv_p, double_log_var=True),
         "log_var is the log of the variance sigma^2, not of sigma: sigma^2 = exp(log_var)"),
        (_kl(mu_q, lv_q, mu_p, lv_p, mean_term_scaled=False),
         "(mu_q - mu_p)^2 must be divided by p's variance too, like sigma_q^2"),
        (right - (lv_p - lv_q).double().sum(-1),
         "the log term has the wrong sign: it is log(sigma_p^2 / sigma_q^2) = log_var_p - log_var_q"),
    ]
    for value, why in wrong:
        if _close(actual, value):
            return why
    return None


def _not_a_tensor_or_a_known_mistake(actual, mu_q: Tensor, lv_q: Tensor, mu_p: Tensor, lv_p: Tensor) -> str | None:
    if not isinstance(actual, Tensor):
        return f"return a tensor of shape ({len(mu_q)},), not a {type(actual).__name__}"
    return _name_kl_mistake(actual, mu_q, lv_q, mu_p, lv_p)


def grade_kl_two_gaussians(answer: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]) -> str | None:
    g = torch.Generator().manual_seed(0)
    B, D = 5, 3
    mu_q, lv_q = torch.randn(B, D, generator=g), 0.8 * torch.randn(B, D, generator=g)
    mu_p, lv_p = 0.7 * torch.randn(B, D, generator=g), 0.6 * torch.randn(B, D, generator=g)

    # 1. p = N(0, I): the library's kl_to_standard_normal (the VAE's own KL term)
    zeros = torch.zeros(B, D)
    actual = answer(mu_q.clone(), lv_q.clone(), zeros.clone(), zeros.clone())
    named = _not_a_tensor_or_a_known_mistake(actual, mu_q, lv_q, zeros, zeros)
    if named:
        return named
    problem = mismatch(actual, kl_to_standard_normal(mu_q, lv_q), "KL(q || N(0, I))")
    if problem:
        return problem + " (genzoo.models.vae.kl_to_standard_normal)"

    # 2. a general p: a Monte-Carlo estimate of E_q[log q(z) - log p(z)] that knows nothing of the formula
    actual = answer(mu_q.clone(), lv_q.clone(), mu_p.clone(), lv_p.clone())
    named = _not_a_tensor_or_a_known_mistake(actual, mu_q, lv_q, mu_p, lv_p)
    if named:
        return named
    S = 200_000
    q = torch.distributions.Normal(mu_q.double(), (0.5 * lv_q.double()).exp())
    p = torch.distributions.Normal(mu_p.double(), (0.5 * lv_p.double()).exp())
    z = q.mean + q.stddev * torch.randn(S, B, D, generator=g, dtype=torch.float64)  # (S, B, D) z ~ q
    log_ratio = (q.log_prob(z) - p.log_prob(z)).sum(-1)  # (S, B)
    mc, stderr = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(S)
    off = (actual.detach().double() - mc).abs() > 5 * stderr + 1e-3
    if off.any():
        i = int(off.nonzero()[0])
        return (f"right for p = N(0, I) but not for a general p: row {i} gives {actual[i].item():.4f}, "
                f"where a Monte-Carlo estimate over {S:,} z ~ q gives {mc[i].item():.4f} +- {stderr[i].item():.4f}")
    return None


# ---------------------------------------------------------------------------------------------
# reparameterize: z = mu + exp(log_var / 2) * eps, eps ~ N(0, I)


def grade_reparameterize(answer: Callable[[Tensor, Tensor], Tensor]) -> str | None:
    N = 100_000
    mu0 = torch.tensor([1.5, -0.5, 0.0], requires_grad=True)
    log_var0 = torch.tensor([math.log(0.64), 0.0, math.log(2.25)], requires_grad=True)  # sigma 0.8, 1, 1.5
    var0 = log_var0.detach().exp()
    mu, log_var = mu0.expand(N, 3), log_var0.expand(N, 3)  # N rows, all with the same q
    with torch.random.fork_rng():  # the learner's draws are seeded; the caller's RNG is left as it was
        torch.manual_seed(0)
        z = answer(mu, log_var)
    if not isinstance(z, Tensor):
        return f"return a tensor z shaped like mu, not a {type(z).__name__}"
    if z.shape != mu.shape:
        return f"z has shape {tuple(z.shape)}, expected {tuple(mu.shape)}, the shape of mu: one z per element"
    if z.grad_fn is None:
        return ("z has no gradient path back to mu and log_var (a .sample(), torch.no_grad() or .detach() "
                "cuts it): draw eps on its own and compute z = mu + sigma * eps from it")
    m, v = z.detach().double().mean(0), z.detach().double().var(0)
    if v.max() < 1e-8:
        return ("every row of z is the same: draw one eps per element (torch.randn_like(mu)), "
                "not one for the whole batch")
    if torch.allclose(v, var0.double() ** 2, rtol=0.03) and not torch.allclose(v, var0.double(), rtol=0.03):
        return ("z's variance is exp(log_var)^2: you used exp(log_var) as the standard deviation, "
                "but sigma = exp(log_var / 2)")
    if ((m - mu0.detach().double()).abs() > 5 * (v / N).sqrt() + 1e-3).any():
        return f"over many draws z has mean {m.tolist()}, where it should be mu = {mu0.tolist()}"
    if not torch.allclose(v, var0.double(), rtol=0.03):
        return (f"over many draws z has variance {v.tolist()}, where it should be "
                f"exp(log_var) = {var0.tolist()}")
    # E[z^2] = mu^2 + exp(log_var): its gradients are 2 mu and exp(log_var); the reparameterised
    # Monte-Carlo average must give them, which needs z to depend on mu and log_var through the sample
    grads = torch.autograd.grad((z**2).mean(0).sum(), [mu0, log_var0], allow_unused=True)
    names, exact = ["mu", "log_var"], [2 * mu0.detach(), var0]
    for name, grad, want in zip(names, grads, exact):
        if grad is None or grad.abs().max() == 0:
            return (f"no gradient reaches {name}: torch.normal and Distribution.sample() draw z without a "
                    f"path back to its parameters (rsample, or mu + sigma * eps, has one)")
        if not torch.allclose(grad, want, rtol=0.05, atol=0.02):
            return (f"the gradient of E[z^2] with respect to {name} is {grad.tolist()}, where it should be "
                    f"{want.tolist()}: does z depend on {name} only through mu + exp(log_var / 2) * eps?")
    return None


# ---------------------------------------------------------------------------------------------
# iw_bound: L_k = log (1/k) sum_i w_i = logsumexp_i(log w_i) - log k


def grade_iw_bound(answer: Callable[[Tensor], Tensor]) -> str | None:
    g = torch.Generator().manual_seed(0)
    B, k = 3, 5

    # 1. small log weights, where the definition can be computed directly (in float64)
    log_w = 2 * torch.randn(B, k, generator=g)
    expected = log_w.double().exp().mean(1).log()  # log of the average weight, exactly as defined
    actual = answer(log_w.clone())
    if not isinstance(actual, Tensor):
        return f"return a tensor of shape ({B},), not a {type(actual).__name__}"
    if actual.shape == (k,):
        return (f"your bound has shape ({k},): log_w is (B, k) = ({B}, {k}), so reduce over dim 1, "
                f"the k importance samples, not over the batch")
    if actual.shape != (B,):
        return f"your bound has shape {tuple(actual.shape)}: return one number per image, shape ({B},)"
    if _close(actual, expected + math.log(k)):
        return (f"the result is off by exactly log k = {math.log(k):.4f}: did you forget the 1/k "
                f"(subtract log k after the logsumexp)?")
    if _close(actual, expected + math.log(k) - math.log(B)):
        return f"you subtracted log {B}, the batch size: k is the number of samples, log_w.shape[1] = {k}"
    if _close(actual, log_w.double().mean(1)):
        return ("that is the average of the log weights (the ELBO estimated from k samples): the bound is "
                "the log of the average weight, which is larger (Jensen's inequality)")
    if _close(actual, log_w.double().max(1).values):
        return "that is the largest log weight alone: the bound averages all k weights"
    problem = mismatch(actual, expected.float(), "L_k")
    if problem:
        return problem
    if not _close(answer(log_w[:, :1].clone()), log_w[:, 0]):
        return "with k = 1 the bound must be the single log weight itself (the ELBO)"

    # 2. a small random VAE's own log weights (log p(x|z) + log p(z) - log q(z|x)), against VAE.log_prob
    with torch.random.fork_rng():
        torch.manual_seed(0)
        cfg = VAEConfig(latent_dim=4, encoder_channels=(8,), decoder_channels=(8,), n_mix=2)
        model = VAE.from_config(cfg, ImageSpec("digits", (1, 28, 28), 10)).eval()
        x = torch.randint(0, 256, (B, 1, 28, 28)).float() / 127.5 - 1
        with torch.no_grad():
            mu, log_var = model.encode(x)
            torch.manual_seed(1)
            log_w = model._log_weights(x, None, mu, log_var, k)  # (B, k), as log_prob draws them
            torch.manual_seed(1)
            expected = model.log_prob(x, k=k)  # the same z's, so the library's L_k of these log weights
    actual = answer(log_w.clone())
    if not isinstance(actual, Tensor) or not torch.isfinite(actual).all():
        return (f"the bound is not finite for log weights near {log_w.mean().item():.0f} nats, the size a "
                f"VAE's are: exp() of them underflows to 0; subtract the largest log weight before "
                f"exponentiating and add it back (torch.logsumexp does this)")
    return mismatch(actual, expected, "L_k of a VAE's log weights (VAE.log_prob)", rtol=0.0, atol=1e-2)


GRADERS = {
    "kl_two_gaussians": grade_kl_two_gaussians,
    "reparameterize": grade_reparameterize,
    "iw_bound": grade_iw_bound,
}
