"""The end of a default ``ppzoo.fit``: refine the stochastic fit on fixed draws, and say how close it is.

Stochastic steps with a shrinking learning rate reach the optimum's
neighbourhood fast and its centre slowly: along directions where the loss
is flat against its noise (a guide's scales, above all under IWAE, whose
guide gradient weakens as ``K`` grows) the iterates creep, and a loss that
levels off under its own noise says nothing about them. So a default fit
ends with a refinement (:mod:`ppzoo.inference.svi.saa`): from where the
stochastic steps ended, L-BFGS minimises the objective over ``R``
independent fixed samples of ``M`` draws, and the answer is the average of
the ``R`` optima (the sample-average approximation of Giordano, Ingram and
Broderick 2024). Each optimum errs by ``O(M^-1/2)``; the spread of the
replicates measures that error, in the units the answer is read in: the
guide's means in its sds, and its sds as fractions
(:func:`ppzoo.diagnostics.fit_convergence.replicate_error`). The fit is
converged when the worst latent coordinate is within
:data:`~ppzoo.diagnostics.fit_convergence.MEAN_TOLERANCE` sds and
:data:`~ppzoo.diagnostics.fit_convergence.SD_TOLERANCE` of its sd.

Why this and not a stopping rule on the stochastic iterates: the rules that
judge stationarity from the iterates themselves (Pflug 1990; Chee & Toulis
2018; Yaida 2018) tell when a constant learning rate has stopped making
progress, which is when to lower it, not how far the average is from the
optimum; iterate averaging (Polyak and Juditsky 1992) leaves an error whose
size the iterates' autocorrelation hides when the relaxation time is longer
than the window. The fixed-sample objective is deterministic, so its
optimum is found to machine precision, and its error is measured by
replication rather than assumed.

A fixed sample whose draws times data values exceed
:data:`PARTICLE_DATA_BUDGET` is evaluated in up to :data:`MAX_CHUNKS` chunks,
each with its own fixed draws, whose values and gradients are averaged: the
same sample-average objective, in bounded memory.

Where it does not apply (an objective that changes with the step, more
than :data:`MAX_PARAMETERS` parameters, a data set over
:data:`MAX_CHUNKS` x :data:`PARTICLE_DATA_BUDGET` / :data:`MIN_PARTICLES` data values, a run that
stopped early) the fit keeps the stochastic answer and its loss-trend verdict, and says so
(``Fit.refinement`` is ``None``, ``Fit.judged_on == "loss"``).
"""

from __future__ import annotations

import numpy as np

from ppzoo.backends.saa_problem import SAAProblem
from ppzoo.diagnostics.fit_convergence import Refinement, draw_moments, moment_gaps, replicate_error
from ppzoo.inference.svi import IWAE
from ppzoo.inference.svi.refine import minimize_sample_average
from ppzoo.inference.svi.saa import refinable, sample_average_objective

__all__ = ["refine_fit", "why_not_refined", "data_elements", "PARTICLES", "MIN_PARTICLES", "REPLICATES", "MAX_PARAMETERS",
           "PARTICLE_DATA_BUDGET", "MAX_CHUNKS", "CHECK_DRAWS"]

#: draws in each fixed sample (fewer on larger data sets, down to :data:`MIN_PARTICLES`)
PARTICLES = 4096
MIN_PARTICLES = 256
#: independent fixed samples (at least; more for guides with few latent coordinates); their spread
#: measures the error of their average
REPLICATES = 2
MAX_REPLICATES = 9
#: the pooled estimate of that error has at least this many degrees of freedom: (R - 1) x coordinates
MIN_DEGREES_OF_FREEDOM = 8
#: fits with more unconstrained parameters than this (neural networks) keep the stochastic answer
MAX_PARAMETERS = 5000
#: draws times data values (every array argument's entries) in one evaluation of the fixed-sample
#: objective, at most: memory grows with it (a VAE's draws are scored on every pixel of every datum)
PARTICLE_DATA_BUDGET = 2**21
#: a fixed sample over that budget is evaluated in at most this many chunks (time grows with them:
#: at 64 the breast-cancer logistic regression, 17,639 data values, gets its 4,096 draws in 35)
MAX_CHUNKS = 64
#: a replicate whose line search stopped short (single precision runs out of digits before SciPy's
#: tolerances are met) is minimised again from there; it counts as converged when that moved the
#: guide's means by less than this many sds and its sds by less than this fraction
STEP_TOLERANCE = 0.01
#: guide draws (the same base noise for every point compared) behind the errors in natural units: with
#: common noise a location-scale guide's gaps are exact at any count; 256 keep other guides' noise small
CHECK_DRAWS = 256


def data_elements(args, kwargs) -> int:
    """The number of values in the arrays among the program's arguments (what each draw is scored on)."""
    import jax

    leaves = jax.tree_util.tree_leaves((tuple(args), dict(kwargs)))
    return int(sum(int(np.prod(np.shape(x))) for x in leaves if hasattr(x, "shape")))


def _sample_size(data_size, objective=None) -> tuple[int, int]:
    """``(draws per chunk, chunks)`` of each fixed sample: :data:`PARTICLES` draws (IWAE: as many
    groups of ``K``) in chunks of at most :data:`PARTICLE_DATA_BUDGET` draws times data values
    (``data_size``: :func:`data_elements`), at most :data:`MAX_CHUNKS` of them."""
    wanted = PARTICLES
    if isinstance(objective, IWAE):
        # the bound flattens in the guide's parameters as K grows (the fixed-sample optimum of the
        # conjugate normal model erred by 0.005 sd at K = 5 and 0.05 sd at K = 20 with 4,096 groups)
        k = objective.num_particles
        wanted = PARTICLES * k * max(1, k // 5)
    per_chunk = PARTICLE_DATA_BUDGET // max(int(data_size or 1), 1)
    chunks = min(MAX_CHUNKS, -(-wanted // max(per_chunk, 1)))  # one where the whole sample fits
    return int(min(per_chunk, -(-wanted // chunks))), int(chunks)


def _chunk_seeds(seed: int, chunks: int) -> list[int]:
    """The fixed draws' seeds of one replicate's chunks: ``seed`` itself, then seeds derived from it."""
    extra = np.random.SeedSequence([seed, 0xC4]).generate_state(chunks - 1) if chunks > 1 else []
    return [int(seed)] + [int(s) for s in extra]


def _chunked(problem, chunk_seeds: dict):
    """``problem`` whose ``evaluate(x, seed)`` averages the chunks ``chunk_seeds[seed]`` (equal sizes,
    so the mean of their means is the mean over the whole fixed sample)."""
    if all(len(c) == 1 for c in chunk_seeds.values()):
        return problem

    def evaluate(x, seed):
        values, grads = zip(*(problem.evaluate(x, s) for s in chunk_seeds[seed]))
        return float(np.mean(values)), np.mean(grads, axis=0)

    return SAAProblem(problem.x0, evaluate, problem.params_at, problem.draws)


def _moved_less_than(a, b, tolerance) -> bool:
    """Whether guide moments ``a`` and ``b`` (:func:`draw_moments`) are within ``tolerance`` sds in
    every mean and ``tolerance`` in every sd ratio."""
    mean_gap, sd_gap = moment_gaps(a, b)
    return bool(np.max(np.abs(mean_gap)) <= tolerance and np.max(np.abs(sd_gap)) <= tolerance)


def why_not_refined(objective, data_size, stop_reason, changing) -> str | None:
    """Why the refinement does not apply to this fit, or ``None`` when it does (before the
    parameters are counted, which needs the problem)."""
    if stop_reason:
        return "the fit stopped early"
    if changing or not refinable(objective):
        return f"its objective ({objective!r}) has no fixed optimum to refine to"
    per_chunk, chunks = _sample_size(data_size)
    if per_chunk * chunks < MIN_PARTICLES:
        return (f"its data hold {data_size:,} values, more than the refinement's budget of "
                f"{MAX_CHUNKS * PARTICLE_DATA_BUDGET // MIN_PARTICLES:,}")
    return None


def refine_fit(adapter, objective, model, guide, args, kwargs, *, params, plate, seed, scope=None, data_size=None):
    """``(params, Refinement)``, or ``(None, reason)`` where the fit is too large to refine.

    ``plate = (name, N)`` or ``(None, None)``; ``params`` the stochastic fit's
    (constrained, NumPy). The replicates use seeds derived from ``seed``; the
    guide draws behind the errors use one seed for every point compared.
    """
    per_chunk, chunks = _sample_size(data_elements(args, kwargs) if data_size is None else data_size, objective)
    twin = sample_average_objective(objective, per_chunk)
    seeds = [int(s) for s in np.random.SeedSequence([seed, 0x5AA]).generate_state(MAX_REPLICATES)]
    chunk_seeds = {s: _chunk_seeds(s, chunks) for s in seeds}
    problem = adapter.saa_problem(twin, model, guide, args, kwargs, params=params, plate=plate,
                                  seeds=[c for s in seeds for c in chunk_seeds[s]], scope=scope)
    problem = _chunked(problem, chunk_seeds)
    if problem.size > MAX_PARAMETERS:
        return None, f"it has {problem.size:,} parameters, more than the refinement's {MAX_PARAMETERS:,}"
    check_seed = seeds[0] + 1

    def moments(x):
        return draw_moments(problem.draws(x, CHECK_DRAWS, check_seed))

    start = moments(problem.x0)
    # enough replicates that the error's pooled estimate has MIN_DEGREES_OF_FREEDOM
    replicates = min(MAX_REPLICATES, max(REPLICATES, 1 + -(-MIN_DEGREES_OF_FREEDOM // start[0].shape[0])))
    seeds = [int(s) for s in np.random.SeedSequence([seed, 0x5AA]).generate_state(replicates)]
    runs, converged, replicate_moments = [], [], []
    for s in seeds:
        run = minimize_sample_average(problem, s)
        at = moments(run.x)
        ok = run.converged
        if not ok:  # a stop SciPy did not call converged: start afresh from there, and see if it moves
            again = minimize_sample_average(problem, s, start=run.x)
            moved = moments(again.x)
            ok = again.converged or _moved_less_than(moved, at, STEP_TOLERANCE)
            again.iterations += run.iterations
            run, at = again, moved
        runs.append(run)
        converged.append(ok)
        replicate_moments.append(at)
    mean_gaps, sd_gaps = zip(*(moment_gaps(m, replicate_moments[0]) for m in replicate_moments[1:]))
    x = np.mean([r.x for r in runs], axis=0)
    final = moments(x)
    moved_mean, moved_sd = moment_gaps(final, start)
    refined = problem.params_at(x)
    record = Refinement(
        particles=int(twin.num_particles) * chunks, replicates=len(runs), iterations=tuple(r.iterations for r in runs),
        converged=tuple(converged),
        mean_error=replicate_error(np.array(mean_gaps), len(runs)),
        sd_error=replicate_error(np.array(sd_gaps), len(runs)),
        moved_mean=float(np.max(np.abs(moved_mean))), moved_sd=float(np.max(np.abs(moved_sd))),
        coordinates=int(final[0].shape[0]),
    )
    return refined, record
