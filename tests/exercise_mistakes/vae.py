"""Typical wrong answers to the VAE notebook's exercises: each must be refused by its grader."""

import math

import torch


def _kl_terms(mu_q, log_var_q, mu_p, log_var_p):  # (B, D): the right per-dimension terms
    return 0.5 * (log_var_p - log_var_q + (log_var_q.exp() + (mu_q - mu_p) ** 2) / log_var_p.exp() - 1)


def kl_not_summed(mu_q, log_var_q, mu_p, log_var_p):  # one KL per dimension, (B, D)
    return _kl_terms(mu_q, log_var_q, mu_p, log_var_p)


def kl_no_half(mu_q, log_var_q, mu_p, log_var_p):
    return 2 * _kl_terms(mu_q, log_var_q, mu_p, log_var_p).sum(-1)


def kl_reversed(mu_q, log_var_q, mu_p, log_var_p):  # KL(p || q)
    return _kl_terms(mu_p, log_var_p, mu_q, log_var_q).sum(-1)


def kl_log_var_as_log_sigma(mu_q, log_var_q, mu_p, log_var_p):  # sigma = exp(log_var)
    return _kl_terms(mu_q, 2 * log_var_q, mu_p, 2 * log_var_p).sum(-1)


def kl_mean_term_unscaled(mu_q, log_var_q, mu_p, log_var_p):  # (mu_q - mu_p)^2 not divided by sigma_p^2
    terms = log_var_p - log_var_q + log_var_q.exp() / log_var_p.exp() + (mu_q - mu_p) ** 2 - 1
    return 0.5 * terms.sum(-1)


def kl_standard_normal_only(mu_q, log_var_q, mu_p, log_var_p):  # ignores p: right only for N(0, I)
    return 0.5 * (mu_q**2 + log_var_q.exp() - 1 - log_var_q).sum(-1)


def kl_no_minus_one(mu_q, log_var_q, mu_p, log_var_p):
    return (_kl_terms(mu_q, log_var_q, mu_p, log_var_p) + 0.5).sum(-1)


def rsample_std_is_exp_log_var(mu, log_var):  # exp(log_var) is the variance, not sigma
    return mu + log_var.exp() * torch.randn_like(mu)


def rsample_plain_sample(mu, log_var):  # no gradient path: .sample() is not reparameterised
    return torch.distributions.Normal(mu, torch.exp(0.5 * log_var)).sample()


def rsample_torch_normal(mu, log_var):  # torch.normal has a grad_fn, but its gradients are zero
    return torch.normal(mu, torch.exp(0.5 * log_var))


def rsample_one_eps(mu, log_var):  # one eps shared by every row
    return mu + torch.exp(0.5 * log_var) * torch.randn(mu.shape[-1])


def rsample_detached(mu, log_var):
    return (mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)).detach()


def iw_forgot_log_k(log_w):
    return torch.logsumexp(log_w, dim=1)


def iw_naive(log_w):  # log(mean(exp)): exact on paper, -inf for a VAE's log weights
    return log_w.exp().mean(dim=1).log()


def iw_mean_of_logs(log_w):  # the k-sample ELBO, not the IW bound
    return log_w.mean(dim=1)


def iw_wrong_dim(log_w):
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def iw_batch_size_as_k(log_w):
    return torch.logsumexp(log_w, dim=1) - math.log(log_w.shape[0])


MISTAKES = {
    "kl_two_gaussians": [kl_not_summed, kl_no_half, kl_reversed, kl_log_var_as_log_sigma,
                         kl_mean_term_unscaled, kl_standard_normal_only, kl_no_minus_one],
    "reparameterize": [rsample_std_is_exp_log_var, rsample_plain_sample, rsample_torch_normal,
                       rsample_one_eps, rsample_detached],
    "iw_bound": [iw_forgot_log_k, iw_naive, iw_mean_of_logs, iw_wrong_dim, iw_batch_size_as_k],
}
