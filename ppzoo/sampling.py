"""``ppzoo.sample``: a Pyro or NumPyro program in, Langevin draws out as an ArviZ result."""

from __future__ import annotations

from ppzoo.backends import make_backend
from ppzoo.backends.global_rng import global_rng_kept
from ppzoo.backends.initial import initial_positions
from ppzoo.backends.support import check_observed_support
from ppzoo.checks import (
    check_count,
    check_data_not_empty,
    check_draws_fit_in_memory,
    check_flag,
    check_model_keywords,
    check_seed,
    check_thinning,
    pandas_values,
)
from ppzoo.files import check_run_fits_on_disk
from ppzoo.inference import get_sampler, run_chains
from ppzoo.inference.sgmcmc.base import LangevinKernel, RefreshingKernel
from ppzoo.interrupt import (
    check_interrupt,
    deferred_interrupt,
)
from ppzoo.pointwise import check_log_likelihood, resolve_log_likelihood
from ppzoo.sampler_result import finish_result

__all__ = ["sample"]


def sample(
    model,
    *args,
    method="sgld-cv",
    num_samples: int = 1000,
    num_warmup: int = 1000,
    num_chains: int = 4,
    thinning: int | str = "auto",
    step_size=None,
    batch_size: int | None = None,
    temperature: float = 1.0,
    inner_loop: int | None = None,
    inverse_mass=None,
    adapt: bool = True,
    preconditioner: str = "auto",
    seed: int = 0,
    device=None,
    jit_compile: bool = True,
    backend: str | None = None,
    data_plate: str | None = None,
    batch_args=None,
    init_strategy=None,
    init_params=None,
    log_likelihood="auto",
    progress_bar: bool = True,
    checkpoint=None,
    checkpoint_every: int | None = None,
    **kwargs,
):
    """Sample the posterior of ``model(*args, **kwargs)`` with a stochastic-gradient Langevin method.

    The model is an ordinary Pyro or NumPyro program, written as for NUTS or
    with the subsampling idiom; its data plate (named by ``data_plate``, or the
    single plate whose size is the leading dimension of the observations) is
    subsampled by ppzoo, ``batch_size`` indices per chain and step, with the
    data terms scaled by ``N / B``. A model that uses its data whole gets the
    minibatch's rows of every argument with N rows (``batch_args`` names them
    where that rule would be wrong); a model that indexes its data by the
    plate's indices gets its arguments whole (:mod:`ppzoo.backends.batching`).

    Args:
        method: ``"sgld-cv"`` (the default: SGLD with control variates at the MAP, whose
            posterior sds are right where plain SGLD's minibatch noise widens them),
            ``"sgld"``, ``"svrg-ld"``, ``"sarah-ld"``, ``"psgld"``
            (SGLD with an RMSprop preconditioner, Li et al. 2016, frozen after warmup:
            :mod:`ppzoo.inference.sgmcmc.psgld`) or ``"sghmc"`` (with momentum:
            :mod:`ppzoo.inference.sgmcmc.sghmc`), or a kernel object such as
            ``ppzoo.inference.SGLDCV(map_steps=2000)`` or ``ppzoo.inference.PSGLD(decay=0.95)``
            (whose own settings are then used: leave ``step_size``,
            ``batch_size``, ``temperature`` and ``inner_loop`` unset).
        num_samples: draws kept per chain (``S``).
        num_warmup: steps discarded first.
        num_chains: chains run side by side (``C``), each with its own minibatches.
        thinning: keep every ``thinning``-th step; ``"auto"`` (the default) chooses it after
            warmup from the chains' autocorrelation time ``tau`` then (steps per effective
            draw of the slowest coordinate): ``ceil(tau / 4)``, at most 100, so that the
            ``num_samples`` draws hold about ``num_samples / 4`` effective ones per chain
            (``tau`` from the late warmup, its last 55%, all of it below 200 steps or without
            adaptation; 1 when that is under 20 steps). The attrs record the choice
            (``thinning``) and ``tau`` (``warmup_autocorrelation``).
        step_size: ``h`` in ``theta' = theta - h M^-1 grad U + sqrt(2 h T) M^(-1/2) xi``;
            a number, a schedule ``t -> h_t`` such as
            ``ppzoo.inference.PolynomialDecay(a, b, gamma)``, or ``None`` (the
            default): chosen during warmup (``adapt=True``), else
            ``1 / lambda_max`` of the potential's Hessian (estimated).
        batch_size: ``B``; default the model's ``subsample_size``, else ``max(ceil(sqrt(N)), 256)``
            capped at N (:data:`ppzoo.backends.layout.MIN_DEFAULT_BATCH`).
        temperature: ``T``; 1 samples the posterior, ``T < 1`` a cold posterior.
        inner_loop: ``m`` for SVRG-LD and SARAH-LD, steps between full
            gradients (default ``ceil(sqrt(N))``; SARAH-LD under warmup adaptation
            chooses a shorter one that bounds its recursion's accumulated error,
            :mod:`ppzoo.inference.sgmcmc.sarah_ld`). The posterior's attrs record ``m``.
        inverse_mass: ``M^-1``, a ``(D,)`` vector (diagonal) or ``(D, D)`` matrix
            (dense) over the unconstrained dimensions (sites sorted by name),
            or ``None``: identity, or chosen during warmup when adapting.
        adapt: with no ``step_size`` given, choose the preconditioner
            (unless ``inverse_mass`` is given) and ``h`` during warmup and hold
            them fixed afterwards (:mod:`ppzoo.inference.sgmcmc.adaptation`);
            ``False`` keeps ``M = I`` (or ``inverse_mass``) and ``h = 1 / lambda_max``.
        preconditioner: what adaptation chooses: ``"dense"``, ``"diagonal"``,
            or ``"auto"`` (dense up to 256 unconstrained dimensions).
        seed: the same seed gives the same draws on the same device.
        device: torch device for Pyro (``"cpu"``, ``"cuda"``); JAX device or
            platform name for NumPyro (default: JAX's default device).
        jit_compile: Pyro: compile the chains' values and gradients into one
            graph per shape, guarded: a model whose Python control flow reads a
            value computed from the parameters (``if w > 0:``), found before
            the first draw, or a graph that disagrees with an eager run at the
            points the chains visit (checked at its first calls, then every
            1,024th), runs eagerly instead, with a ``RuntimeWarning``;
            ``False`` runs every step eagerly (slower). NumPyro always
            compiles with ``jax.jit``, which refuses such control flow.
        backend: ``"pyro"`` or ``"numpyro"`` (default: detected by tracing).
        data_plate: the plate that holds the data (default: found as above).
        batch_args: the per-datum arguments, as positions and keyword names
            (e.g. ``[0, "y"]``), for models that use their data whole; default:
            every array argument whose leading axis has N entries.
        init_strategy: where the chains start, an init strategy of the model's PPL
            (``numpyro.infer.init_to_median``, ``init_to_value(values=...)``, Pyro's
            ``pyro.infer.autoguide.init_to_median``, ...), run once per chain with its own seed;
            default: uniform in ``[-2, 2]`` of the unconstrained space (``init_to_uniform``).
            Under warmup adaptation the MAP search starts there.
        init_params: instead, per latent site its starting value in the unconstrained space (as
            NumPyro's ``MCMC.run(init_params=...)``): the site's unconstrained shape, or
            ``(num_chains, *shape)`` (:mod:`ppzoo.backends.initial`).
        log_likelihood: store the per-datum log-likelihood (``C * S * N`` floats) and
            ``sample_stats.lp``, both from one pass over the data per draw: ``"auto"`` (the
            default) when ``C * S * N`` is at most ``ppzoo.pointwise.LOG_LIKELIHOOD_BUDGET``
            (10^8 values, 400 MB as float32; above it, a warning and none), ``True`` / ``"all"``
            always, ``False`` / ``"none"`` never. ``ppzoo.log_likelihood(idata, model, *args,
            thin=k, **kwargs)`` computes it later, in chunks.
        progress_bar: show a tqdm progress bar.
        checkpoint: a file (netCDF) to write the run to as it goes: at the end of warmup, every
            ``checkpoint_every`` draws and after the last, atomically, the draws so far (an
            ArviZ result) and the sampler's state (positions, tuning, random state, counts);
            ``ppzoo.resume(checkpoint, model, *args, **kwargs)`` continues it
            (:mod:`ppzoo.checkpoint`). A run whose checkpoints would not fit in the free space of
            its folder is refused before it starts (``OSError``, with the arithmetic). A checkpoint
            that cannot be written (a full disk) does not stop the run: a ``RuntimeWarning`` says
            so, the next block tries again, the result is returned whole, and where the last try
            failed its posterior's ``checkpoint_error`` attr says why.
        checkpoint_every: kept draws between checkpoints (default: a tenth of ``num_samples``).

    Returns:
        The ArviZ result of the installed line, an ``xarray.DataTree`` under
        ArviZ 1.x and an ``arviz.InferenceData`` under 0.23, with the same
        groups: ``posterior`` ``(chain, draw, ...)``, ``sample_stats``
        (``step_size``, ``diverging``, ``lp`` = ``-U(theta)`` on all the data,
        cumulative ``grad_evals``, ``full_gradient``), ``log_likelihood`` and
        ``observed_data``; the attrs record ``adapted`` and the preconditioner
        ``inverse_mass``, and the posterior's attrs the convergence report (R-hat, bulk and
        tail ESS, MCSE per parameter: :mod:`ppzoo.diagnostics.convergence`). A
        ``ConvergenceWarning`` names the worst parameters when R-hat exceeds 1.01 or an
        ESS falls below 100 per chain, or when a parameter's draws do not move.
        NumPy's and torch's global random states are left as they were (tracing a Pyro
        program draws from torch's).
    """
    check_log_likelihood(log_likelihood)
    check_flag("progress_bar", progress_bar)
    check_flag("adapt", adapt)
    check_flag("jit_compile", jit_compile)
    check_seed(seed)
    # the run's lengths before the model is traced (the driver checks them again)
    check_count("num_samples", num_samples, 1)
    check_count("num_warmup", num_warmup, 0)
    check_count("num_chains", num_chains, 1)
    check_thinning(thinning)
    check_model_keywords(model, kwargs, sample)
    args, kwargs = pandas_values(args, kwargs)
    check_data_not_empty(model, args, kwargs)
    if checkpoint_every is not None:
        check_count("checkpoint_every", checkpoint_every, 1)
        if checkpoint is None:
            raise ValueError("checkpoint_every is set but checkpoint is not; pass checkpoint='run.nc'")
    if checkpoint is not None:
        from ppzoo.files import check_writable

        check_writable(checkpoint, option="checkpoint")
    kernel = _kernel(
        method, step_size=step_size, batch_size=batch_size, temperature=temperature, inner_loop=inner_loop,
        inverse_mass=inverse_mass,
    )
    # Ctrl-C from here on is honoured at the driver's safe points (ppzoo.interrupt)
    with deferred_interrupt(), global_rng_kept():
        oracle = make_backend(
            model, args, kwargs, backend=backend, data_plate=data_plate, device=device, batch_args=batch_args,
            jit_compile=jit_compile,
        )
        check_observed_support(oracle)
        check_count("num_chains", num_chains, 1)
        check_draws_fit_in_memory(num_chains, num_samples, oracle.dim)
        start = initial_positions(oracle, num_chains, seed, init_strategy=init_strategy, init_params=init_params)
        check_interrupt()  # stopped before the chains exist: nothing to return
        log_likelihood = resolve_log_likelihood(log_likelihood, num_chains, num_samples, oracle.num_data, stacklevel=3)
        check_run_fits_on_disk(oracle, num_chains, num_samples, log_likelihood, checkpoint)
        writer = None
        if checkpoint is not None:
            from ppzoo.backends.signature import program_signature
            from ppzoo.checkpoint import Checkpointer, call_record, data_fingerprint

            every = checkpoint_every or max(1, num_samples // 10)
            writer = Checkpointer(checkpoint, every, oracle, {
                "backend": oracle.name, "data_plate": oracle.layout.data_plate, "batch_args": batch_args,
                "jit_compile": jit_compile, "seed": seed, "num_chains": num_chains, "num_warmup": num_warmup,
                "log_likelihood": log_likelihood, "checkpoint_every": every,
                "data": data_fingerprint(args, kwargs), "call": call_record(model, args, kwargs),
                "program": program_signature(oracle),
                "model_module": getattr(model, "__module__", None), "model_name": getattr(model, "__qualname__", None),
            })
        run = run_chains(
            kernel,
            oracle,
            init_positions=start,
            num_samples=num_samples,
            num_warmup=num_warmup,
            num_chains=num_chains,
            thinning=thinning,
            seed=seed,
            progress_bar=progress_bar,
            adapt=adapt,
            preconditioner=preconditioner,
            on_block=writer,
        )
        idata = finish_result(run, oracle, num_chains, log_likelihood, stacklevel=4)
        return idata if writer is None else writer.note_failure(idata)


def _kernel(method, **settings):
    if isinstance(method, LangevinKernel):
        given = {k: v for k, v in settings.items() if v is not None and not (k == "temperature" and v == 1.0)}
        if given:
            raise ValueError(
                f"method is a kernel object with its own settings; pass {sorted(given)} to it instead"
            )
        return method
    if not isinstance(method, str):
        raise TypeError(f"method must be a method name or a ppzoo Langevin kernel, got {method!r}")
    kernel_cls = get_sampler(method)
    if not issubclass(kernel_cls, RefreshingKernel) and settings.pop("inner_loop") is not None:
        raise ValueError(f"inner_loop applies to svrg-ld and sarah-ld, not to method={method!r}")
    return kernel_cls(**settings)
