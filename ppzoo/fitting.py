"""``ppzoo.fit``: a Pyro or NumPyro model and guide in, a fitted guide out, inspectable in ArviZ."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from tqdm.auto import tqdm

from ppzoo.backends import check_guide_ppl, resolve_backend
from ppzoo.backends.batching import check_real_arguments
from ppzoo.backends.sites import check_data_given, fixed_observed
from ppzoo.backends.svi_adapter import svi_adapter
from ppzoo.checks import (
    check_count,
    check_data_not_empty,
    check_flag,
    check_model_keywords,
    check_number,
    check_seed,
    keyword_parameters,
    pandas_values,
)
from ppzoo.diagnostics import arviz_compat, psis_khat, svi_draws_to_inference_data
from ppzoo.diagnostics.collapse import CollapseReport, collapse_report
from ppzoo.diagnostics.fit_convergence import (
    FitConvergenceWarning,
    LossTrend,
    PlateauSchedule,
    Refinement,
    loss_rose,
    loss_trend,
)
from ppzoo.diagnostics.svi import (
    KHAT_THRESHOLD,
    PSIS_MIN_DRAWS,
    ImportanceSamplingWarning,
    describe_khat,
    khat_summary,
    psis_weights,
)
from ppzoo.fit_draws import GuideDraws, guide_draws, reweighted_draws
from ppzoo.inference.evaluate import (
    check_has_density,
    estimate_log_marginal_likelihood,
    point_mass_sites,
)
from ppzoo.inference.svi import IWAE, AnnealedELBO, SVIObjective
from ppzoo.interrupt import deferred_interrupt
from ppzoo.refinement import data_elements, refine_fit, why_not_refined

__all__ = ["fit", "Fit", "load_fit"]

#: the default Adam's first learning rate in ``ppzoo.fit`` (lowered tenfold at each plateau, twice)
LEARNING_RATE = 1e-2
#: ... and for programs with neural networks (parameters named ``module$...``: ``pyro.module``,
#: NumPyro's ``flax_module``/``haiku_module``/``eqx_module``), Adam's customary rate for them
NEURAL_LEARNING_RATE = 1e-3
#: ``num_steps=None`` runs until the loss levels off at the last learning rate, or this many steps
MAX_STEPS = 30_000


def _objective(objective, num_particles, estimator, data_plate):
    if isinstance(objective, SVIObjective):
        return objective
    if objective in ("iwae", "elbo"):
        check_count("num_particles", num_particles)  # before the cache, where True == 1
        try:
            return _named_objective(objective, num_particles, estimator, data_plate)
        except TypeError as err:  # unhashable settings: let the constructor name the argument
            if "unhashable" not in str(err):
                raise
            return _named_objective.__wrapped__(objective, num_particles, estimator, data_plate)
    raise ValueError(
        f"objective must be 'elbo', 'iwae' or an objective object such as ppzoo.inference.AnnealedELBO(...), got {objective!r}"
    )


def _with_data_plate(asked, objective, num_particles, estimator, data_plate):
    """The objective of ``fit(objective=asked, ...)`` with the data plate ``data_plate``: a named one
    made anew, an objective object copied unless it names its own data plate."""
    if not isinstance(asked, SVIObjective):
        return _objective(asked, num_particles, estimator, data_plate)
    if objective.data_plate is not None:
        return objective
    import copy

    objective = copy.copy(objective)
    objective.data_plate = data_plate
    return objective


@lru_cache(maxsize=32)
def _named_objective(objective, num_particles, estimator, data_plate):
    """One objective object per setting, so later fits reuse what the first compiled."""
    if objective == "iwae":
        return IWAE(num_particles, estimator, data_plate=data_plate)
    return AnnealedELBO(1.0, num_particles, estimator=estimator, data_plate=data_plate)


@dataclass
class Fit:
    """A fitted guide.

    Attributes:
        params: ``{name: array}``, the fitted parameters (constrained), NumPy.
        losses: ``(T,)`` the loss (negative objective) at each step.
        guide, model: the programs; ``args``/``kwargs`` the data they were fitted to.
        backend: ``"pyro"`` or ``"numpyro"``.
        objective: the objective object used.
        stop_reason: ``None``, or why the run stopped before ``num_steps``
            (interruption, a non-finite loss); the parameters are those of the
            last finite step.
        diverged: the loss or a parameter stopped being finite; the parameters are
            those of the last finite loss (checked finite), and later evaluations warn.
        trend: the trend of the loss over its last steps
            (:class:`ppzoo.diagnostics.fit_convergence.LossTrend`: how much it still fell,
            with its standard error, the smoothed final loss and the noise level);
            ``converged`` is its verdict: ``True`` when the loss levelled off, ``False``
            when it was still falling (``fit`` then warns), ``None`` for too few steps.
        compiled_as: how the steps ran: ``"jit"`` (NumPyro: ``jax.jit``),
            ``"graph"`` (Pyro: one compiled graph per step after the first),
            or ``"eager (why)"`` (Pyro, where a graph could not be used).
    """

    model: object
    guide: object
    args: tuple
    kwargs: dict
    backend: str
    objective: SVIObjective
    params: dict
    losses: np.ndarray
    data_plate: str | None = None
    device: object = None
    stop_reason: str | None = None
    compiled_as: str | None = None
    diverged: bool = False
    trend: LossTrend | None = None
    #: ``[(step, learning rate)]``: the default optimiser's learning rate from each step on (empty for the user's optimiser)
    learning_rates: list = field(default_factory=list)
    #: how the fit was refined on fixed draws and how close that brought it to the optimum
    #: (:class:`ppzoo.diagnostics.fit_convergence.Refinement`), or ``None``
    refinement: Refinement | None = None
    #: why the fit was not refined (``None`` when it was, or was not asked to be)
    not_refined: str | None = None
    #: the loss ended higher than it started (:func:`ppzoo.diagnostics.fit_convergence.loss_rose`)
    loss_rose: bool = False

    @property
    def judged_on(self) -> str:
        """What ``converged`` was judged on: ``"parameters"`` (the refinement's error bound on the
        guide's means and sds) or ``"loss"`` (the loss's trend alone)."""
        return "parameters" if self.refinement is not None else "loss"

    @property
    def converged(self) -> bool | None:
        """Refined fits: the guide's means within ``MEAN_TOLERANCE`` sds and its sds within
        ``SD_TOLERANCE`` of the objective's optimum (estimated bound, see :mod:`ppzoo.refinement`).
        Other fits: the loss levelled off and did not rise (``None``: too few steps to tell).
        ``False`` for any fit whose loss ended above where it started (an optimiser that ascends)."""
        if self.loss_rose:
            return False
        if self.refinement is not None:
            return self.refinement.within
        return None if self.trend is None else self.trend.levelled_off
    #: the PPL's state of this fit (Pyro: its parameter-store scope)
    _scope: object = field(default=None, repr=False)
    _laplace: tuple | None = field(default=None, repr=False)

    @property
    def _adapter(self):
        return svi_adapter(self.backend, self.device)

    def _evaluator(self):
        if self.diverged:
            warnings.warn(
                f"this fit diverged ({self.stop_reason}): its parameters are those of the last finite loss and may be "
                "far from the optimum; refit with a smaller learning rate", RuntimeWarning, stacklevel=3,
            )
        guide, params = self._posterior_guide()
        return self._adapter.evaluator(
            self.model, guide, self.args, self.kwargs, params=params, data_plate=self.data_plate, scope=self._scope,
        )

    def _posterior_guide(self):
        """``(guide, params)`` drawn from as the posterior: the guide, or for ``AutoLaplaceApproximation``
        its Laplace approximation at the fitted MAP (made once)."""
        if self._laplace is None:
            self._laplace = self._adapter.posterior_guide(
                self.model, self.guide, self.args, self.kwargs, params=self.params, scope=self._scope,
            )
        return self._laplace

    @staticmethod
    def _check_draws(num_samples, seed, chunk_size, minimum=2):
        check_count("num_samples", num_samples, minimum)
        check_count("chunk_size", chunk_size)
        check_seed(seed)

    def _draws(self, num_samples, seed, chunk_size, evaluate=None) -> GuideDraws:
        """``num_samples`` draws of the fitted guide (:class:`ppzoo.fit_draws.GuideDraws`)."""
        self._check_draws(num_samples, seed, chunk_size)
        return guide_draws(evaluate or self._evaluator(), num_samples, seed, chunk_size)

    def collapse(self, site: str | None = None, num_samples: int = 10, seed: int = 0, threshold: float = 0.01) -> CollapseReport:
        """Posterior-collapse diagnostics of the guide's per-datum Gaussian latent ``site`` on all the data.

        KL to a standard-normal prior per latent dimension, active units
        (``Var_x(E_q[z_j]) > threshold``), ``I(x; z)`` under the aggregate
        posterior and the rate-distortion pair, the distortion from
        ``num_samples`` draws per datum (:mod:`ppzoo.diagnostics.collapse`).
        ``site`` may be omitted when the guide has one such latent.
        """
        check_count("num_samples", num_samples, 1)
        check_seed(seed)
        check_number("threshold", threshold, low=0.0)
        if site is not None and not isinstance(site, str):
            raise TypeError(f"site must be the name (str) of a per-datum latent of the guide, or None; got {site!r}")
        site, loc, scale = self._local_normal(self.args, self.kwargs, site, "collapse diagnostics need")
        _, _, loglik, *_ = self._evaluator()(num_samples, seed)
        reconstruction = sum(np.asarray(v, dtype=np.float64) for v in loglik.values())
        return collapse_report(loc, scale, reconstruction, threshold=threshold, seed=seed, site=site)

    def to_arviz(self, num_samples: int = 1000, seed: int = 0, chunk_size: int = 100,
                 collapse: bool | str = False, draws: str | None = None, pool_size: int | None = None):
        """The ArviZ result of ``num_samples`` posterior draws (one chain): an
        ``xarray.DataTree`` under ArviZ 1.x, an ``arviz.InferenceData`` under 0.23.

        ``draws`` says what the posterior group holds:

        * ``"reweighted"`` (the default after an importance-weighted objective,
          ``objective="iwae"``): the posterior the fit implies, the guide's draws
          resampled by their PSIS-smoothed importance weights ``p(x, z) / q(z)``
          from a pool of ``pool_size`` guide draws (default ``max(10 S, 1000)``),
          per datum when every latent is per datum (a VAE), jointly otherwise
          (:mod:`ppzoo.fit_draws`). An IWAE guide is a proposal, not the
          posterior: it may be much wider. The attrs give k-hat and the
          importance-sampling ESS of the pool (``psis_khat``, ``importance_ess``,
          ``psis``), and an :class:`ImportanceSamplingWarning` says when k-hat
          exceeds 0.7.
        * ``"guide"`` (the default after the ELBO): the guide's own draws, its
          approximation of the posterior; k-hat and ESS of these draws in the attrs.

        The attrs record which (``draws``, and ``draws_note`` in words).
        ``log_likelihood``: per observed site and datum given each draw;
        ``sample_stats.log_weight``: each draw's ``log p(x, z) - log q(z)`` over
        the whole data set (for guide draws, their importance weights; for
        reweighted ones, where they came from: they are already resampled);
        ``observed_data``. Draws are made ``chunk_size`` at a time.
        ``collapse=True`` (or a site name) adds a ``collapse`` group with
        :meth:`collapse`'s diagnostics (``ppzoo.diagnostics.plot_collapse`` draws it).
        """
        self._check_draws(num_samples, seed, chunk_size)
        asked = draws
        draws = self._check_draws_kind(draws)
        if pool_size is not None:
            check_count("pool_size", pool_size, max(num_samples, PSIS_MIN_DRAWS))
        evaluate = self._evaluator()
        points = point_mass_sites(evaluate, seed)
        if points and asked == "reweighted":
            check_has_density(evaluate, "to_arviz(draws='reweighted')")
        if points or draws == "guide":
            result, psis = self._draws(num_samples, seed, chunk_size, evaluate), None
            if not points:
                psis = self._draws_psis(result)
        else:
            result, reweighting = reweighted_draws(
                evaluate, num_samples, seed, chunk_size, pool_size
            )
            psis = (khat_summary(reweighting.khat, reweighting.ess), reweighting)
        log_weights = result.log_weights
        if points:
            warnings.warn(
                f"the guide's site(s) {points} are point masses (a Delta, as AutoDelta's are): the posterior group "
                "repeats the fitted point, whose sd of 0 is not the posterior's, and sample_stats has no importance "
                "weights", UserWarning, stacklevel=2,
            )
            log_weights = None
        attrs = {
            "backend": self.backend,
            "objective": repr(self.objective),
            "num_steps": len(self.losses),
            "final_loss": float(self.losses[-1]) if len(self.losses) else float("nan"),
        }
        if self.stop_reason:
            attrs["stop_reason"] = self.stop_reason
        attrs["diverged"] = int(self.diverged)
        if self.learning_rates:
            attrs["learning_rates"] = json.dumps(self.learning_rates)
        if self.converged is not None:
            attrs["converged"] = int(self.converged)
            attrs["judged_on"] = self.judged_on
        if self.trend is not None:
            attrs["loss_trend"] = json.dumps(self.trend.to_dict())
        if self.refinement is not None:
            attrs["refinement"] = json.dumps(self.refinement.to_dict())
        elif self.not_refined:
            attrs["not_refined"] = self.not_refined
        attrs.update(self._draws_attrs("guide" if points else draws, psis))
        idata = svi_draws_to_inference_data(
            result.latents, result.log_likelihood, result.observed, log_weights, local=result.local,
            data_plate=self.data_plate, attrs=attrs,
            fixed=fixed_observed(self.model, self.args, self.kwargs, self.backend, self.data_plate)[0],
        )
        if collapse:
            report = self.collapse(site=None if collapse is True else collapse, seed=seed)
            arviz_compat.add_group(idata, "collapse", report.to_dataset())
        return idata

    #: what ``to_arviz(draws=...)`` accepts
    DRAWS = ("reweighted", "guide")

    def _check_draws_kind(self, draws) -> str:
        """``draws`` checked, or the default: reweighted after an importance-weighted objective."""
        if draws is None:
            return "reweighted" if isinstance(self.objective, IWAE) else "guide"
        if draws not in self.DRAWS:
            raise ValueError(
                f"draws must be one of {self.DRAWS} (or None for the objective's default), got {draws!r}"
            )
        return draws

    @staticmethod
    def _draws_psis(result: GuideDraws):
        """``(khat_summary, None)`` of guide draws (per datum where every latent is), or ``None``
        for fewer draws than PSIS needs."""
        if len(result.log_weights) < PSIS_MIN_DRAWS:
            return None
        ratios = result.local_log_weights.T if result.per_datum else result.log_weights
        _, khat, ess = psis_weights(ratios)
        return khat_summary(khat, ess), None

    def _draws_attrs(self, draws: str, psis) -> dict:
        """The attrs that say what the posterior group holds, and k-hat (warned about above 0.7)."""
        importance_weighted = isinstance(self.objective, IWAE)
        if draws == "guide":
            note = ("the guide's own draws, which an importance-weighted objective fits as a "
                    "proposal, not as the posterior (its posterior is these draws reweighted by "
                    "exp(sample_stats.log_weight); to_arviz(draws='reweighted'), the default, draws it)"
                    if importance_weighted else
                    "the guide's own draws: its approximation of the posterior "
                    "(to_arviz(draws='reweighted') corrects them by their importance weights)")
        else:
            note = ("the guide's draws resampled by their PSIS-smoothed importance weights "
                    f"p(x, z) / q(z) (sampling-importance-resampling from {psis[1].pool_size:,} guide "
                    f"draws, {'per datum' if psis[1].per_datum else 'jointly'}): the posterior the fit "
                    "implies; sample_stats.log_weight records each draw's weight in the guide, not a "
                    "weight to apply")
        attrs = {"draws": draws, "draws_note": note}
        if psis is None:
            return attrs
        summary, reweighting = psis
        attrs.update(psis_khat=summary["khat_max"], importance_ess=summary["ess_min"],
                     psis=json.dumps(summary))
        if reweighting is not None:
            attrs.update(reweighting="per_datum" if reweighting.per_datum else "joint",
                         pool_size=reweighting.pool_size)
            if summary["khat_max"] > KHAT_THRESHOLD:
                warnings.warn(
                    "the reweighted draws may be far from the posterior: "
                    f"{describe_khat(summary, reweighting.pool_size)} (above {KHAT_THRESHOLD} the "
                    "importance weights' tail is too heavy for the guide to be corrected); fit a guide "
                    "closer to the posterior, or draw a larger pool (pool_size=)",
                    ImportanceSamplingWarning, stacklevel=3,
                )
        return attrs

    def psis_khat(self, num_samples: int = 1000, seed: int = 0, per_datum: bool | None = None,
                  chunk_size: int = 100):
        """Pareto k-hat of the importance ratios ``p(x, z) / q(z)``, ``z ~`` guide (Yao et al. 2018).

        Below 0.5 importance sampling from the guide works well; 0.5 to 0.7 with
        care; above 0.7 the guide's reweighted estimates should not be trusted.
        k-hat is the shape of the ratios' right tail, not a distance between the
        guide and the posterior: a guide wider than the posterior has bounded
        ratios and a negative k-hat (often near -1 or below), though it is not the
        posterior; ``to_arviz()``'s attrs give the importance-sampling ESS too,
        which says how far it is (:mod:`ppzoo.diagnostics.svi`).

        ``per_datum``: ``None`` (default) gives one k-hat per datum when every
        latent is per datum (an amortised VAE, whose ratios factorise into
        ``p(x_i, z_i) / q(z_i | x_i)``; one k-hat over ``N`` data would multiply
        ``N`` such ratios) and the single joint k-hat otherwise; ``True`` insists on
        per datum, ``False`` on the joint one. Per datum: an ``xarray.DataArray``
        ``(N,)`` named ``khat`` with the data plate's dim (``.quantile``,
        ``(khat > 0.7).mean()`` read its distribution); jointly: a float.
        """
        self._check_draws(num_samples, seed, chunk_size, PSIS_MIN_DRAWS)
        if per_datum is not None:
            check_flag("per_datum", per_datum)
        evaluate = self._evaluator()
        check_has_density(evaluate, "psis_khat")
        result = self._draws(num_samples, seed, chunk_size, evaluate)
        if per_datum is None:
            per_datum = result.per_datum
        if not per_datum:
            return psis_khat(result.log_weights)
        if result.local_log_weights is None:
            raise ValueError("per_datum=True needs a model with a data plate")
        shared = sorted(set(result.latents) - result.local)
        if shared or not result.per_datum:
            raise ValueError(
                f"per_datum=True needs a model whose latents are all per datum; {shared or 'some'} are "
                "shared by all data, so the per-datum ratios p(x_i, z_i) / q(z_i | x_i) are not defined"
            )
        import xarray as xr

        khat = psis_khat(result.local_log_weights.T)
        return xr.DataArray(khat, dims=[self.data_plate or "datum"], name="khat")

    def save(self, path) -> None:
        """Write this fit to ``path``: parameters, the PPL's state and the fit's record, in a NumPy
        ``.npz`` archive that loads without running code from it; ``ppzoo.load_fit(path, model,
        guide, *args, **kwargs)`` reads it back (:mod:`ppzoo.fit_io`)."""
        import os

        from ppzoo.files import check_writable
        from ppzoo.fit_io import save_fit

        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a file name (str or os.PathLike), got {path!r}")
        check_writable(path, option="path")
        save_fit(self, path)

    def observed_means(self, latents: dict, *args, **kwargs) -> dict:
        """``{site: mean}`` of the model's observed sites, with the fitted parameters and the latents
        held at ``latents`` (``{site: array}``): a decoder's output at chosen codes.

        ``args`` / ``kwargs``: the model's arguments (default: the fitted data); a
        per-datum latent ``(M, d)`` goes with data of ``M`` rows. For the zoo's
        VAEs, ``fit.observed_means({"z": z}, x[:M])["x"]`` is the decoder's
        Bernoulli mean (grey levels) at ``z``.
        """
        if not isinstance(latents, dict) or not latents:
            raise TypeError(f"latents must be a non-empty dict {{site: array}}, got {type(latents).__name__}")
        if not args and not kwargs:
            args, kwargs = self.args, self.kwargs
        return self._adapter.observed_means(self.model, args, kwargs, params=self.params, latents=latents,
                                            scope=self._scope)

    def encoder_means(self, *args, site: str | None = None, **kwargs):
        """The guide's per-datum Normal latent ``site``'s means ``(N, d)`` on ``args`` (default: the fitted data)."""
        if not args and not kwargs:
            args, kwargs = self.args, self.kwargs
        return self._local_normal(args, kwargs, site, "encoder_means needs")[1]

    def _local_normal(self, args, kwargs, site, what):
        """``(site, loc, scale)`` of the guide's per-datum Normal latent ``site`` (``None``: its only
        one) on ``args`` / ``kwargs``, ``(N, d)`` each; ``what`` begins the error where there is none."""
        guide, params = self._posterior_guide()
        normals = self._adapter.local_normals(self.model, guide, args, kwargs, params=params,
                                              data_plate=self.data_plate, scope=self._scope)
        if not normals:
            raise ValueError(f"{what} a guide with a Normal latent inside the data plate (an encoder q(z|x))"
                             + (f"; site={site!r} is not one" if site is not None else ""))
        if site is None:
            if len(normals) > 1:
                raise ValueError(f"the guide has several per-datum Normal latents {sorted(normals)}; pass site=")
            site = next(iter(normals))
        if site not in normals:
            raise ValueError(f"site must be one of the guide's per-datum Normal latents {sorted(normals)}, got {site!r}")
        return (site, *normals[site])

    def log_marginal_likelihood(self, num_samples: int = 5000, chunk_size: int = 100, seed: int = 0):
        """``ppzoo.log_marginal_likelihood`` of the fitted guide on the data it was fitted to."""
        return estimate_log_marginal_likelihood(
            self._evaluator(), num_samples=num_samples, chunk_size=chunk_size, seed=seed
        )


def load_fit(path, model, guide, *args, device=None, **kwargs) -> Fit:
    """The fit saved at ``path`` (by ``Fit.save``), for ``model`` and ``guide`` on the data
    ``*args, **kwargs``.

    ``model`` and ``guide`` must be the programs the fit was made with (or programs of the same PPL
    with the same ``param`` statements), and the data those it was fitted to for its draws to be
    the saved fit's (other data give a warning). ``device``: where the parameters go (default: the
    PPL's default device). Raises ``ValueError`` for a file that is not a saved fit, programs of the
    other PPL, and parameter names that differ from the programs' (naming them).
    """
    import dataclasses

    from ppzoo.fit_io import read_fit

    fields = {f.name for f in dataclasses.fields(Fit)}
    return Fit(**read_fit(path, model, guide, tuple(args), dict(kwargs), device=device, fields=fields))


def fit(
    model,
    guide,
    *args,
    objective="elbo",
    num_particles: int = 1,
    estimator: str = "reparam",
    optimizer=None,
    num_steps: int | None = None,
    batch_size: int | None = None,
    batch_args=None,
    seed: int = 0,
    device=None,
    backend: str | None = None,
    data_plate: str | None = None,
    progress_bar: bool = True,
    step_kwargs=None,
    jit_compile: bool = True,
    callback=None,
    refine: bool | None = None,
    **kwargs,
) -> Fit:
    """Fit ``guide`` to the posterior of ``model(*args, **kwargs)`` by stochastic variational inference.

    ``guide`` is a program of the same PPL: hand-written, or one of its
    autoguides (``AutoNormal``, ``AutoMultivariateNormal``, flows, ...), whose
    auxiliary draws count in ``log q`` while the result speaks of the model's
    sites. ``AutoDelta`` (a point mass) makes the ELBO and IWAE both
    ``log p(x, z)``: a MAP fit, with no density for PSIS or ``log p(x)``. The
    fit checks its loss's trend at the end (``Fit.converged``, ``Fit.trend``)
    and warns when it was still falling.

    Args:
        objective: ``"elbo"`` (``num_particles`` draws averaged), ``"iwae"``
            (the bound with ``K = num_particles``), or an objective object
            (``ppzoo.inference.IWAE(...)``, ``AnnealedELBO(beta=LinearWarmup(...))``).
        estimator: ``"reparam"``, ``"stl"``, or for IWAE ``"dreg"``.
        optimizer: a ``pyro.optim`` optimiser (Pyro, made with a dict of
            arguments or a function of the parameter) or a ``numpyro.optim`` one
            (NumPyro), whose learning rate is left as it is. Default: Adam
            (``pyro.optim.Adam``; ``optax.adam`` through
            ``numpyro.optim.optax_to_numpyro``) from learning rate ``1e-2``
            (``1e-3`` for programs with neural-network modules, whose parameter
            names hold ``$``), lowered tenfold when the loss levels off, twice,
            each rate running at least twice as long as the one before
            (:class:`ppzoo.diagnostics.fit_convergence.PlateauSchedule`;
            ``Fit.learning_rates`` records it).
        num_steps: optimisation steps ``T``; ``None`` (default): until the loss
            levels off at the last learning rate (at the user's learning rate
            with ``optimizer=``), at most :data:`MAX_STEPS` (30,000). An
            objective that changes with the step (an annealed ``beta``,
            ``step_kwargs``) needs ``num_steps``, and keeps its first learning rate.
        batch_size: subsample the data plate, ``B`` indices per step drawn
            uniformly with replacement, data terms scaled by ``N / B``
            (default: the model's own plate settings, usually all data). As
            ``ppzoo.sample``: a program that indexes its data by the plate's
            indices (``with plate("data", N, subsample_size=B) as idx``) is given
            the indices; one written for all its data (``with plate("data",
            x.shape[0]): sample("y", ..., obs=y)``) is given the minibatch's rows
            of every argument with N rows (``batch_args``), its likelihood
            scaled by ``N / B``; one that reads its data beyond the rows it is
            given (``n = x.shape[0]`` in a prior) runs full-batch with a warning
            on small data and is refused on large.
        batch_args: with ``batch_size``, the per-datum arguments to slice
            (positions and keyword names), where the rule above would guess wrong.
        seed: the random stream (draws and minibatches).
        device: torch device (Pyro) or JAX device / platform name (NumPyro).
        backend: ``"pyro"`` or ``"numpyro"`` (default: detected).
        data_plate: the plate holding the data (default: the outermost plate
            around every observed site).
        progress_bar: a tqdm bar with the running loss.
        step_kwargs: ``t -> dict``: keyword arguments for the model and guide
            that change with the step ``t`` (from 0), e.g. an annealed decoder
            constant ``lambda t: {"constant": schedule(t)}`` or a binarisation
            draw ``lambda t: {"binarize_step": t}``. On NumPyro ``t`` is a
            traced integer, so the function must be array arithmetic. Later
            evaluations (``to_arviz``, ``log_marginal_likelihood``) call the
            programs without them, so the programs need defaults for them.
            On Pyro, values that are not tensors keep the fit eager.
        jit_compile: Pyro: after one eager step, trace a step (programs,
            objective and backward pass) into one compiled graph and use it
            if it reproduces an eager step exactly (``Fit.compiled_as`` says
            whether it did). Programs whose Python control flow reads a value
            computed from the parameters or the draws stay eager by themselves;
            ``False`` keeps every step eager (say, for a program that changes
            its parameters or its structure from step to step in ways that a
            trace cannot see). NumPyro always compiles with ``jax.jit``.
        callback: ``callback(t, loss)``, called with each step's loss as it
            becomes known (logging, timing): after every step on Pyro; on
            NumPyro after each compiled block of 50 steps, once per step of it.
        refine: end with a refinement on fixed draws (:mod:`ppzoo.refinement`):
            L-BFGS on the objective over two fixed samples of guide draws from
            where the stochastic steps ended, the result their average, and
            ``Fit.converged`` the verdict of its error bound on the guide's
            means and sds. ``None`` (default): when ``num_steps`` is ``None``
            and the fit is small enough (``Fit.not_refined`` says why not);
            ``True``: also after a fixed ``num_steps``; ``False``: never (the
            verdict is then the loss's trend alone, ``Fit.judged_on``).

    Pyro fits run in a fresh parameter-store scope (the global store is left
    as it was); ``torch.nn`` modules registered with ``pyro.module`` are trained
    in place. A run that is interrupted (Ctrl-C), or whose loss or parameters
    stop being finite (``Fit.diverged``), ends early with a warning, keeping the
    parameters of its last finite loss. Observations with NaN or infinite
    values are refused before anything runs.
    """
    asked_objective, objective = objective, _objective(objective, num_particles, estimator, data_plate)
    if num_steps is not None:
        check_count("num_steps", num_steps, 1)
    check_seed(seed)
    check_flag("progress_bar", progress_bar)
    if not callable(guide):
        raise TypeError(f"guide must be a callable Pyro or NumPyro program, got {type(guide).__name__}")
    if isinstance(guide, type):
        raise TypeError(
            f"guide is the class {guide.__name__}, not a guide: make one from the model, guide={guide.__name__}(model)"
        )
    if guide is model:
        raise ValueError(
            "guide is the model itself: a guide is a separate program that samples the model's latent sites from "
            "distributions with param statements (or an autoguide, e.g. AutoNormal(model))"
        )
    if step_kwargs is not None and not callable(step_kwargs):
        raise TypeError(f"step_kwargs must be a function t -> dict of keyword arguments, got {type(step_kwargs).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function (t, loss) -> None, got {type(callback).__name__}")
    if callback is not None and not _takes_positional(callback, 2):
        raise TypeError(f"callback must be a function (t, loss) -> None, taking two arguments; got {_described(callback)}")
    check_flag("jit_compile", jit_compile)
    if refine is not None:
        check_flag("refine", refine)
    if batch_size is not None:  # its type and lower bound before the model is traced; N is known after
        check_count("batch_size", batch_size, 1)
    if batch_args is not None and batch_size is None:
        raise ValueError(
            "batch_args names the per-datum arguments to slice to each minibatch, and needs batch_size= as well "
            f"(got batch_args={batch_args!r} and batch_size=None)"
        )
    args, kwargs = pandas_values(args, kwargs)
    check_model_keywords(model, kwargs, fit)
    check_data_not_empty(model, args, kwargs)
    check_real_arguments(model, args, kwargs)
    _check_guide_arguments(guide, args, kwargs)
    if step_kwargs is not None:
        _check_step_kwargs(step_kwargs, model)
    backend = resolve_backend(model, args, kwargs, backend,
                              proper_priors="SVI initialises its guide from draws of the prior, which it has none of")
    check_guide_ppl(guide, backend)
    _check_guide_of(guide, model)
    check_data_given(model, args, kwargs, backend)
    if data_plate is None:
        # a latent fixed by a conditioning handler is no observation: the data plate is around the others
        _, implied = fixed_observed(model, args, kwargs, backend, None)
        if implied is not None:
            data_plate = implied
            objective = _with_data_plate(asked_objective, objective, num_particles, estimator, data_plate)
    annealed = isinstance(objective, AnnealedELBO) and callable(objective.beta)
    # a loss that changes with the step (annealed beta, step_kwargs) has no plateau to judge
    changing = annealed or step_kwargs is not None
    if num_steps is None and changing:
        raise ValueError(
            "num_steps must be given when the objective changes from step to step (an annealed beta or step_kwargs): "
            "the fit cannot tell from such a loss when to stop"
        )
    schedule = PlateauSchedule(_first_learning_rate if optimizer is None else None, reduce=not changing,
                               stop=num_steps is None)
    max_steps = MAX_STEPS if num_steps is None else num_steps
    bar = tqdm(total=max_steps, desc=f"fit ({backend})", disable=not progress_bar, unit="step", dynamic_ncols=True)

    def on_step(t, loss):
        schedule.observe(loss)
        bar.update(1)
        if t % 50 == 0:
            bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        if callback is not None:
            callback(t, loss)

    settings = dict(num_steps=max_steps, seed=seed, annealed=annealed, on_step=on_step, step_kwargs=step_kwargs,
                    control=schedule, batch_args=batch_args)
    try:
        # Ctrl-C is honoured between steps (blocks of steps on NumPyro): ppzoo.interrupt
        with deferred_interrupt():
            result = svi_adapter(backend, device).fit(
                objective, model, guide, args, kwargs, optimizer=optimizer, learning_rate=LEARNING_RATE,
                batch_size=batch_size, data_plate=data_plate, settings=settings, jit_compile=jit_compile,
            )
    finally:
        bar.close()
    diverged = bool(result.stop_reason) and "not finite" in result.stop_reason
    if diverged:
        _check_params_finite(result.params)
    if result.stop_reason:
        warnings.warn(
            f"ppzoo.fit stopped early: {result.stop_reason}; keeping the parameters of the last finite loss"
            + (" (the fit diverged: try a smaller learning rate)" if diverged else ""), RuntimeWarning, stacklevel=2,
        )
    losses = np.asarray(result.losses, dtype=np.float64)
    # judged at the last learning rate: a lower rate lowers the loss by itself, which is not a trend
    start = schedule.since_change if schedule.since_change < len(losses) else 0
    trend = loss_trend(losses[start:]) if len(losses) else None
    params, refinement, not_refined = result.params, None, None
    if refine or (refine is None and num_steps is None):
        values = data_elements(args, kwargs)
        not_refined = why_not_refined(objective, values, result.stop_reason, changing)
        if not_refined is None:
            refined, outcome = refine_fit(
                svi_adapter(backend, device), objective, model, guide, args, kwargs, params=result.params,
                plate=(result.data_plate, result.data_size), seed=seed, scope=result.scope, data_size=values,
            )
            if refined is None:
                not_refined = outcome
            else:
                params, refinement = refined, outcome
    rose = changing is False and loss_rose(losses)
    _warn_unconverged(trend, refinement, losses, start, num_steps, result.stop_reason, rose)
    return Fit(
        model=model, guide=guide, args=args, kwargs=kwargs, backend=backend, objective=objective,
        params=params, losses=losses, data_plate=result.data_plate,
        device=device, stop_reason=result.stop_reason, compiled_as=result.compiled_as, _scope=result.scope,
        diverged=diverged, trend=trend, learning_rates=schedule.changes, refinement=refinement,
        not_refined=not_refined if refine is not False else None, loss_rose=rose,
    )


def _warn_unconverged(trend, refinement, losses, start, num_steps, stop_reason, rose) -> None:
    """One :class:`FitConvergenceWarning` where the fit may be off: a loss that rose, a refinement
    whose error bound exceeds the tolerances, or, without one, a loss still falling at the end."""
    if stop_reason:
        return  # the stop has been reported
    if rose or (trend is not None and trend.rising):
        first, last = np.median(losses[: max(len(losses) // 10, 1)]), np.median(losses[-max(len(losses) // 10, 1):])
        warnings.warn(
            f"ppzoo.fit's loss rose: from a median of {first:.6g} over its first tenth of steps to {last:.6g} over "
            "its last; the optimiser ascends or diverges (check that its learning rate is positive, and lower it)"
            + ("; the refinement on fixed draws then moved the answer by "
               f"{refinement.moved_mean:.3g} sd" if refinement is not None else ""),
            FitConvergenceWarning, stacklevel=3,
        )
        return
    if refinement is not None:
        if not refinement.within:
            warnings.warn(
                f"ppzoo.fit may be off its optimum: {refinement.describe()}; fit longer (a larger num_steps), "
                "with more particles, or with a guide family closer to the posterior",
                FitConvergenceWarning, stacklevel=3,
            )
        return
    if trend is not None and trend.levelled_off is False:
        advice = ("run more steps (num_steps=, or None to stop when it levels off)" if num_steps is not None
                  else f"it ran the most steps num_steps=None allows ({MAX_STEPS:,}); pass a larger num_steps=")
        warnings.warn(
            f"ppzoo.fit had not levelled off: {trend.describe(len(losses) - start)}"
            + (f" since its learning rate was last lowered, at step {start:,}" if start else "") + f"; {advice} or, if it falls slowly, "
            "raise the learning rate (optimizer=)", FitConvergenceWarning, stacklevel=3,
        )


def _innermost(program):
    """The user's function under a program's handler wrappers (NumPyro's ``Messenger`` objects, Pyro's
    ``poutine`` partials, ``functools.partial``)."""
    import functools

    for _ in range(100):
        inner = getattr(program, "fn", None)
        if inner is None and isinstance(program, functools.partial):
            wraps = getattr(program.func, "__name__", None) == "_context_wrap" and len(program.args) >= 2
            inner = program.args[1] if wraps else program.func
        if inner is None or not callable(inner):
            return program
        program = inner
    return program


def _check_guide_of(guide, model) -> None:
    """An autoguide made for another program (``AutoNormal(other_model)``) would fail on the model's
    shapes deep inside the PPL: a ``ValueError`` naming both."""
    made_for = getattr(guide, "model", None)
    if made_for is None or not callable(made_for) or not hasattr(guide, "prototype_trace"):
        return
    if _innermost(made_for) is not _innermost(model):
        name = lambda program: getattr(_innermost(program), "__name__", type(program).__name__)  # noqa: E731
        raise ValueError(
            f"guide {type(guide).__name__} was made for model {name(made_for)!r}, not for the model fitted, "
            f"{name(model)!r}: make it from this model, {type(guide).__name__}({name(model)})"
        )


def _takes_positional(fn, count: int) -> bool:
    """Whether ``fn`` can be called with ``count`` positional arguments (``True`` where its signature
    cannot be read)."""
    import inspect

    try:
        inspect.signature(fn).bind(*range(count))
    except TypeError:
        return False
    except ValueError:
        return True
    return True


def _described(fn) -> str:
    import inspect

    try:
        return f"{getattr(fn, '__name__', type(fn).__name__)}{inspect.signature(fn)}"
    except (TypeError, ValueError):
        return repr(fn)


def _check_guide_arguments(guide, args, kwargs) -> None:
    """The guide is called with the model's arguments: a ``TypeError`` naming it where its signature
    cannot take them."""
    import inspect

    try:
        inspect.signature(guide).bind(*args, **kwargs)
    except TypeError as err:
        raise TypeError(
            f"guide {_described(guide)} cannot be called with the model's arguments ({err}): a guide takes the "
            "same arguments as the model"
        ) from None
    except ValueError:
        return


def _check_step_kwargs(step_kwargs, model) -> None:
    """``step_kwargs(0)`` must be a dict of keyword arguments of the model: a ``TypeError`` naming
    step_kwargs otherwise (a wrong value fails inside the compiled step, far from it)."""
    try:
        first = step_kwargs(0)
    except Exception:  # noqa: BLE001 - a function of a traced integer only: it runs in the fit
        return
    if not isinstance(first, dict) or not all(isinstance(k, str) for k in first):
        raise TypeError(
            f"step_kwargs must be a function t -> dict of keyword arguments of the model; step_kwargs(0) gave {first!r}"
        )
    params = keyword_parameters(model)
    if params is None:
        return
    unknown = sorted(set(first) - set(params) - {"annealing_step"})
    if unknown:
        raise TypeError(
            f"step_kwargs gives keyword(s) {unknown} that are no parameters of the model {tuple(params)}: "
            "the model and the guide are called with them at every step"
        )


def _first_learning_rate(param_names) -> float:
    """:data:`NEURAL_LEARNING_RATE` when a parameter belongs to a neural-network module (its name holds
    ``$``, as the PPLs name module parameters), else :data:`LEARNING_RATE`."""
    return NEURAL_LEARNING_RATE if any("$" in name for name in param_names) else LEARNING_RATE


def _check_params_finite(params) -> None:
    """The parameters a diverged fit hands back must be finite: anything else is a bug of the rollback."""
    import jax

    bad = [name for name, value in params.items()
           if not all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree_util.tree_leaves(value))]
    if bad:
        raise FloatingPointError(f"the fit diverged and its rolled-back parameters {bad} are not finite")
