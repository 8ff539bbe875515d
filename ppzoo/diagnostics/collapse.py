"""Posterior-collapse diagnostics for models with a per-datum diagonal-Gaussian encoder.

With ``q(z | x_n) = N(mu_n, diag(sigma_n^2))`` (``mu``, ``sigma`` of shape
``(N, d)``) and the prior ``p(z) = N(0, I)``:

- KL per latent dimension, averaged over the data:
  ``KL_j = mean_n 0.5 (mu_nj^2 + sigma_nj^2 - 1 - log sigma_nj^2)``.
  A collapsed dimension has ``KL_j ~ 0``: its posterior is the prior.
- Active units (Burda et al. 2016): dimension ``j`` is active when
  ``Cov_x(E_q[z_j]) = Var_n(mu_nj) > threshold`` (0.01 by default).
- Mutual information under the aggregate posterior
  ``q(z) = 1/N sum_m q(z | x_m)`` (Hoffman & Johnson 2016):
  ``I(x; z) = E_n E_{q(z|x_n)}[log q(z | x_n) - log q(z)]``, by Monte Carlo
  with the exact mixture density; it lies in ``[0, log N]``.
- Rate and distortion (Alemi et al. 2018): ``R = sum_j KL_j`` and
  ``D = -mean_n E_q[log p(x_n | z)]``; ``-(R + D)`` is the ELBO per datum.

All functions take NumPy arrays and return NumPy values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

__all__ = [
    "kl_per_dimension", "active_units", "mutual_information", "CollapseReport", "collapse_report", "plot_collapse",
]

LOG_2PI = float(np.log(2 * np.pi))


def _check_encoder(loc, scale):
    loc, scale = np.asarray(loc, dtype=np.float64), np.asarray(scale, dtype=np.float64)
    if loc.ndim != 2:
        raise ValueError(f"loc must have shape (N, d), got {loc.shape}")
    if scale.shape != loc.shape:
        raise ValueError(f"scale must have the shape of loc {loc.shape}, got {scale.shape}")
    if not (np.all(np.isfinite(loc)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise ValueError("loc must be finite and scale finite and > 0")
    return loc, scale


def kl_per_dimension(loc, scale) -> np.ndarray:
    """``(d,)``: ``mean_n KL(N(loc_nj, scale_nj^2) || N(0, 1))`` in nats."""
    loc, scale = _check_encoder(loc, scale)
    return np.mean(0.5 * (loc**2 + scale**2 - 1.0) - np.log(scale), axis=0)


def active_units(loc, threshold: float = 0.01) -> tuple[int, np.ndarray]:
    """``(count, variances)``: how many ``Var_n(loc_nj)`` exceed ``threshold``, and those ``(d,)`` variances."""
    loc = np.asarray(loc, dtype=np.float64)
    if loc.ndim != 2:
        raise ValueError(f"loc must have shape (N, d), got {loc.shape}")
    variances = loc.var(axis=0)
    return int(np.sum(variances > threshold)), variances


def _log_normal(z, loc, scale):
    # z (S, d) against every (loc, scale) row (N, d): (S, N)
    u = (z[:, None, :] - loc[None]) / scale[None]
    return -0.5 * np.sum(u**2 + LOG_2PI, axis=-1) - np.sum(np.log(scale), axis=-1)[None]


def mutual_information(loc, scale, *, num_samples: int = 1, seed: int = 0, chunk_size: int = 256,
                       return_standard_error: bool = False):
    """``I(x; z)`` in nats under the aggregate posterior (module docstring), ``num_samples`` draws per datum.

    With ``return_standard_error=True`` returns ``(estimate, Monte Carlo standard error)``,
    the error from the spread of the ``N * num_samples`` per-draw terms.
    """
    loc, scale = _check_encoder(loc, scale)
    n, d = loc.shape
    rng = np.random.default_rng(seed)
    # log q(z|x_n) at the draw itself rather than its expectation (minus the entropy): the paired
    # difference has a smaller variance, and none at all when every q(z|x_n) is the same
    terms = []
    for start in range(0, n, chunk_size):
        mu, sd = loc[start:start + chunk_size], scale[start:start + chunk_size]
        eps = rng.standard_normal((len(mu), num_samples, d))
        z = (mu[:, None] + sd[:, None] * eps).reshape(-1, d)
        own = (-0.5 * np.sum(eps**2 + LOG_2PI, axis=-1) - np.sum(np.log(sd), axis=-1)[:, None]).reshape(-1)
        terms.append(own - (logsumexp(_log_normal(z, loc, scale), axis=1) - np.log(n)))
    terms = np.concatenate(terms)
    estimate = float(terms.mean())
    if return_standard_error:
        return estimate, float(terms.std(ddof=1) / np.sqrt(terms.size))
    return estimate


@dataclass(frozen=True)
class CollapseReport:
    """Collapse diagnostics of one encoder on one data set (see the module docstring).

    Attributes:
        kl: ``(d,)`` KL to the prior per latent dimension (nats).
        mean_variance: ``(d,)`` ``Var_n(E_q[z_j])``.
        active_units: the number of dimensions with ``mean_variance > threshold``.
        mutual_information: ``I(x; z)`` (nats).
        rate: ``sum(kl)``.
        distortion: ``-mean_n E_q log p(x_n | z)``, or ``nan`` when not given.
        threshold: the active-unit threshold.
        site: the latent site's name.
    """

    kl: np.ndarray
    mean_variance: np.ndarray
    active_units: int
    mutual_information: float
    rate: float
    distortion: float
    threshold: float
    site: str = "z"

    def to_dataset(self):
        """An ``xarray.Dataset`` (dim ``latent_dim``), the ArviZ result's group ``collapse``."""
        import xarray as xr

        d = len(self.kl)
        return xr.Dataset(
            {
                "kl": ("latent_dim", self.kl),
                "mean_variance": ("latent_dim", self.mean_variance),
                "active_units": ((), self.active_units),
                "mutual_information": ((), self.mutual_information),
                "rate": ((), self.rate),
                "distortion": ((), self.distortion),
            },
            coords={"latent_dim": np.arange(d)},
            attrs={"threshold": self.threshold, "site": self.site},
        )

    @classmethod
    def from_dataset(cls, ds) -> CollapseReport:
        """The report stored in an ArviZ result's ``collapse`` group (an ``xarray.Dataset``)."""
        return cls(
            kl=ds["kl"].values, mean_variance=ds["mean_variance"].values, active_units=int(ds["active_units"]),
            mutual_information=float(ds["mutual_information"]), rate=float(ds["rate"]),
            distortion=float(ds["distortion"]), threshold=float(ds.attrs.get("threshold", 0.01)),
            site=str(ds.attrs.get("site", "z")),
        )


def collapse_report(loc, scale, reconstruction=None, *, threshold: float = 0.01, num_samples: int = 1,
                    seed: int = 0, site: str = "z") -> CollapseReport:
    """All diagnostics at once.

    Args:
        loc, scale: the encoder's ``(N, d)`` means and standard deviations.
        reconstruction: optional ``(N,)`` (or ``(S, N)``, averaged over ``S``)
            values of ``log p(x_n | z)`` at draws ``z ~ q(z | x_n)``.
        threshold: the active-unit threshold on ``Var_n(E_q[z_j])``.
    """
    if not (isinstance(threshold, (int, float)) and threshold >= 0):
        raise ValueError(f"threshold must be a number >= 0, got {threshold!r}")
    kl = kl_per_dimension(loc, scale)
    count, variances = active_units(loc, threshold)
    distortion = float("nan")
    if reconstruction is not None:
        rec = np.asarray(reconstruction, dtype=np.float64)
        distortion = float(-np.mean(rec.mean(axis=0) if rec.ndim == 2 else rec))
    return CollapseReport(
        kl=kl, mean_variance=variances, active_units=count,
        mutual_information=mutual_information(loc, scale, num_samples=num_samples, seed=seed),
        rate=float(kl.sum()), distortion=distortion, threshold=float(threshold), site=site,
    )


def plot_collapse(report, ax=None):
    """Bars of KL per latent dimension, active ones filled, with the AU count, MI, rate and distortion.

    ``report``: a :class:`CollapseReport`, or a fit's ArviZ result (``DataTree`` or
    ``InferenceData``) with a ``collapse`` group. Returns the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    from ppzoo.diagnostics import arviz_compat

    if not isinstance(report, CollapseReport):
        if not (arviz_compat.is_result(report) and arviz_compat.has_group(report, "collapse")):
            raise ValueError("report must be a CollapseReport or an ArviZ result with a 'collapse' group")
        report = CollapseReport.from_dataset(arviz_compat.get_group(report, "collapse"))
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.4 * len(report.kl) + 2), 3.2))
    active = report.mean_variance > report.threshold
    dims = np.arange(len(report.kl))
    ax.bar(dims[active], report.kl[active], color="C0", label="active")
    ax.bar(dims[~active], report.kl[~active], color="none", edgecolor="C3", hatch="//", label="inactive")
    ax.set_xlabel(f"latent dimension of {report.site}")
    ax.set_ylabel("KL to the prior (nats)")
    ax.set_title(
        f"AU {report.active_units}/{len(report.kl)}, I(x;z) {report.mutual_information:.2f}, "
        f"rate {report.rate:.2f}, distortion {report.distortion:.2f}",
        fontsize="small",
    )
    ax.legend(fontsize="small")
    return ax
