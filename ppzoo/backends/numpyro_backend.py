"""NumPyro programs seen through the gradient-oracle contract (JAX).

The minibatch is chosen by ``handlers.substitute`` on the data plate's site,
which NumPyro honours under ``jit`` with traced indices; the plate then
scales the data sites by ``N / B`` itself. Latent values are substituted in
the constrained space, ``biject_to(support)`` from NumPyro maps ``theta`` there
and its log-Jacobian enters the prior term. Chains are vectorised with
``jax.vmap``; blocks of steps run under ``jit`` with ``lax`` loops.
"""

from __future__ import annotations

import re
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify
from numpyro import handlers
from numpyro.distributions.transforms import biject_to

from ppzoo.backends.base import Backend, reduce_info
from ppzoo.backends.batching import (
    BatchArgs,
    check_observed_lengths,
    check_point,
    check_real_arguments,
    plan_minibatches,
    plate_sizes,
    take_batch,
    unobserved_data,
)
from ppzoo.backends.layout import (
    DeterministicSite,
    PlateRecord,
    deterministic_site,
    model_name,
    plan_layout,
    reads_data_elsewhere,
)
from ppzoo.backends.sites import (
    Site,
    constrain,
    fixed_sites,
    log_density,
    log_joint,
    plate_scale,
    pointwise_log_likelihood,
    program_view,
    raise_unobserved,
    site_records,
    unconstrain,
)

__all__ = ["NumPyroBackend", "trace_numpyro"]

#: data per chunk when the full-data gradient or likelihood is summed
FULL_DATA_CHUNK = 4096
#: what tracing a program raises when it reads the value of an array it was handed as a traced
#: argument (it then keeps its arrays as compile-time constants, as NumPyro's MCMC does by default)
_TRACER_READS = (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                 jax.errors.TracerIntegerConversionError, jax.errors.TracerBoolConversionError)


def _is_data(leaf) -> bool:
    return isinstance(leaf, jax.Array) and leaf.ndim > 0


def to_jax(tree, device=None):
    def convert(leaf):
        if type(leaf).__module__.startswith("pandas") and hasattr(leaf, "to_numpy"):  # a Series, a DataFrame
            leaf = leaf.to_numpy()
        if type(leaf).__module__.startswith("torch"):
            leaf = leaf.detach().cpu().numpy()
        if isinstance(leaf, np.ndarray):
            leaf = jnp.asarray(leaf)
        if device is not None and isinstance(leaf, jax.Array):
            leaf = jax.device_put(leaf, device)
        return leaf

    return jax.tree_util.tree_map(convert, tree)


def jax_device(device):
    if device is None or isinstance(device, jax.Device):
        return device
    if isinstance(device, str):
        platform = {"cuda": "gpu"}.get(device.split(":")[0], device.split(":")[0])
        try:
            index = int(device.split(":")[1]) if ":" in device else 0
        except ValueError:
            raise ValueError(f"device={device!r}: the part after ':' must be a device number, as in 'cuda:0'") from None
        try:
            found = jax.devices(platform)
        except RuntimeError as err:
            raise ValueError(f"device={device!r} is not available to JAX: {err}") from None
        if not 0 <= index < len(found):
            raise ValueError(
                f"device={device!r}: JAX has {len(found)} {platform} device(s), numbered 0 to {len(found) - 1}"
            )
        return found[index]
    raise TypeError(f"device must be None, a string such as 'cpu' or 'cuda', or a jax.Device; got {device!r}")


def feasible(site):
    """A value for a continuous latent site that no handler has given one: ``biject_to(support)`` of
    zeros (a point of the support, as ``init_to_feasible``), so that a program with an improper
    prior (``ImproperUniform``, which cannot be sampled) can be traced."""
    if site["type"] != "sample" or site["is_observed"] or site["value"] is not None:
        return None
    fn = site["fn"]
    if fn.support.is_discrete:
        return None
    transform = biject_to(fn.support)
    shape = tuple(site["kwargs"].get("sample_shape", ())) + tuple(transform.inverse_shape(fn.shape()))
    return transform(jnp.zeros(shape))


def at_check_point(site):
    """As :func:`feasible`, at ``biject_to(support)`` of :func:`~.batching.check_point` values of
    the site's own unconstrained shape (so a site whose shape the data set still gets a value)."""
    if site["type"] != "sample" or site["is_observed"] or site["value"] is not None or site["fn"].support.is_discrete:
        return None
    fn = site["fn"]
    transform = biject_to(fn.support)
    shape = tuple(site["kwargs"].get("sample_shape", ())) + tuple(transform.inverse_shape(fn.shape()))
    return transform(jnp.asarray(check_point(int(np.prod(shape, dtype=int))), dtype=jnp.result_type(float)).reshape(shape))


def trace_numpyro(model, args, kwargs, data=None, point=feasible):
    """Trace a NumPyro program once (seeded), optionally substituting ``data``; latents not in
    ``data`` take a feasible value (:func:`feasible`, or ``point``) instead of a draw from their prior."""
    fn = handlers.seed(model, rng_seed=0)
    if data:
        fn = handlers.substitute(fn, data=data)
    fn = handlers.substitute(fn, substitute_fn=point)
    return handlers.trace(fn).get_trace(*args, **kwargs)


def numpyro_sites(trace) -> tuple[list[Site], dict[str, PlateRecord]]:
    """The trace's sample statements as :class:`~.sites.Site` and its plates as ``PlateRecord``; an
    observed value given as a Python number (``handlers.condition(model, data={"sigma": 1.0})``)
    becomes an array of the default float dtype."""
    sites, plates = [], {}
    for name, site in trace.items():
        if site["type"] == "plate":
            size, subsample_size = site["args"]
            plates[name] = PlateRecord(name, int(size), None if subsample_size is None else int(subsample_size))
        elif site["type"] == "sample":
            scale = 1.0 if site.get("scale") is None else site["scale"]
            frames = tuple((f.name, f.dim) for f in site["cond_indep_stack"])
            value = site["value"]
            if site["is_observed"] and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = jnp.asarray(value, dtype=jnp.result_type(float))
            sites.append(Site(name, site["fn"], value, bool(site["is_observed"]), scale, site.get("mask"), frames))
    return sites, plates


def site_names(model, args, kwargs) -> tuple[list, list]:
    """``(latent sites, observed sites)`` of one trace of ``model``."""
    trace = trace_numpyro(model, to_jax(tuple(args)), to_jax(dict(kwargs)))
    sites = [(n, s["is_observed"]) for n, s in trace.items() if s["type"] == "sample"]
    return [n for n, o in sites if not o], [n for n, o in sites if o]


def observed_plates(model, args, kwargs) -> dict:
    """``{observed site: {plate name: dim}}`` of one trace of ``model``."""
    trace = trace_numpyro(model, to_jax(tuple(args)), to_jax(dict(kwargs)))
    return {n: {f.name: f.dim for f in s["cond_indep_stack"]} for n, s in trace.items()
            if s["type"] == "sample" and s["is_observed"]}


def conditioned_names(model) -> set:
    """The names of the sites that ``numpyro.handlers.condition`` wrappers around ``model`` give
    values (``handlers.condition(model, data={"sigma": 1.0})``, possibly under other handlers)."""
    from numpyro.primitives import Messenger

    found, fn = set(), model
    for _ in range(100):
        if isinstance(fn, handlers.condition) and isinstance(getattr(fn, "data", None), dict):
            found |= set(fn.data)
        if isinstance(fn, Messenger):
            fn = fn.fn
        elif isinstance(fn, partial):
            fn = fn.func
        else:
            break
    return found


def numpyro_deterministic(trace) -> tuple[DeterministicSite, ...]:
    """The trace's ``numpyro.deterministic`` statements."""
    return tuple(
        deterministic_site(name, jnp.shape(site["value"]), [(f.name, f.dim) for f in site.get("cond_indep_stack", ())])
        for name, site in trace.items()
        if site["type"] == "deterministic"
    )


def _inverse_shape(support, shape):
    return biject_to(support).inverse_shape(shape)


class NumPyroBackend(Backend):
    """The gradient oracle of a NumPyro program (see :class:`ppzoo.backends.base.Backend`)."""

    name = "numpyro"

    def __init__(self, model, args=(), kwargs=None, data_plate=None, device=None, trace=None, batch_args=None):
        self.model = model
        self.device = jax_device(device)
        self.args = to_jax(tuple(args), self.device)
        self.kwargs = to_jax(dict(kwargs or {}), self.device)
        check_real_arguments(model, self.args, self.kwargs)
        if trace is None:
            trace = trace_numpyro(model, self.args, self.kwargs)
        full = {n: jnp.arange(s["args"][0]) for n, s in trace.items() if s["type"] == "plate" and s["args"][1] not in (None, s["args"][0])}
        if full:  # see the full data, not the model's own subsample
            trace = trace_numpyro(model, self.args, self.kwargs, data=full)
        sites, plates = numpyro_sites(trace)
        missing = unobserved_data(model, self.args, self.kwargs, [s.name for s in sites if not s.observed],
                                  [s.name for s in sites if s.observed])
        if missing:
            raise_unobserved(missing)
        records = site_records(sites, _inverse_shape, np.asarray)
        self.layout = plan_layout(records, plates, data_plate, model, numpyro_deterministic(trace))
        self._transforms = {
            s.name: biject_to(trace[s.name]["fn"].support) for s in self.layout.latent
        }
        self.batch_args = BatchArgs()
        if self.layout.data_plate is not None:
            check_observed_lengths(model, self.args, self.kwargs, [o.name for o in self.layout.observed],
                                   self.layout.data_plate, self.layout.num_data)
        if self.layout.data_plate is not None and self.layout.num_data > 1:
            self.batch_args, findings, how = plan_minibatches(
                self._batch_sizes, self._view, self._indexed_past, model, self.args, self.kwargs,
                plate=self.layout.data_plate, num_data=self.layout.num_data, arange=jnp.arange, batch_args=batch_args,
            )
            if findings:  # full-batch (with a warning) or an error
                reads_data_elsewhere(plates[self.layout.data_plate], model_name(model), findings, how)
                self.layout = plan_layout(records, plates, data_plate, model, numpyro_deterministic(trace), full_batch=True)
                self.batch_args = BatchArgs()
        self._observed = {
            s.name: trace[s.name]["value"] for s in self.layout.all_observed
        }
        #: latents given a value by a conditioning handler: fixed values, not data (:func:`~.sites.fixed_sites`)
        self.fixed = fixed_sites(self.layout, conditioned_names(model))
        self._block_cache = {}  # compiled blocks and optimisers, by settings

        self._data_as_arguments = True
        self._potential = self._jit(jax.vmap(self._potential_single))
        self._grad = self._jit(jax.vmap(jax.grad(self._potential_single)))
        self._full_potential = self._jit(jax.vmap(lambda th: self._full_value_and_grad(th)[0]))
        self._full_grad = self._jit(jax.vmap(lambda th: self._full_value_and_grad(th)[1]))
        self._full_hvp = self._jit(jax.vmap(
            lambda th, v: jax.jvp(lambda t: self._full_value_and_grad(t)[1], (th,), (v,))[1]
        ))
        self._pointwise = self._jit(jax.vmap(self._pointwise_single))
        self._constrain = self._jit(jax.vmap(lambda th: self._constrain_single(th)[0]))
        self._deterministic = self._jit(jax.vmap(self._deterministic_single))
        self._check_data_as_arguments()

    # -- the program's arrays as arguments of the compiled functions ------------------------
    def _jit(self, fn):
        """``jax.jit(fn)``, the program's array arguments (``self.args``, ``self.kwargs``) handed to
        it as arguments rather than closed over: a closed-over array is a compile-time constant, and
        XLA then spends time proportional to the data on every compilation (1 s per function at
        N = 10^6, d = 20) and keeps a copy of the data in every executable. Called inside another
        such function, it is handed that one's traced arrays, so nothing becomes a constant."""

        def with_data(data, *operands):
            saved = self.args, self.kwargs
            self.args, self.kwargs = self._with_data_leaves(data)
            try:
                return fn(*operands)
            finally:
                self.args, self.kwargs = saved

        compiled = jax.jit(with_data)
        return lambda *operands: compiled(self._data_leaves(), *operands)

    def _data_leaves(self) -> tuple:
        if not self._data_as_arguments:
            return ()
        return tuple(leaf for leaf in jax.tree_util.tree_leaves((self.args, self.kwargs)) if _is_data(leaf))

    def _with_data_leaves(self, data):
        if not data:
            return self.args, self.kwargs
        leaves, tree = jax.tree_util.tree_flatten((self.args, self.kwargs))
        given = iter(data)
        return jax.tree_util.tree_unflatten(tree, [next(given) if _is_data(leaf) else leaf for leaf in leaves])

    def _check_data_as_arguments(self):
        """A program that reads its data's values in Python (``len(np.unique(np.asarray(g)))``)
        cannot take them as traced arguments: it keeps them as constants, as before."""
        if not self._data_leaves():
            return
        theta = jax.ShapeDtypeStruct((1, self.dim), jnp.result_type(float))
        idx = jax.ShapeDtypeStruct((1, min(2, max(1, self.layout.num_data or 1))), jnp.int32)
        try:
            jax.eval_shape(self._potential, theta, idx)
        except _TRACER_READS:
            self._data_as_arguments = False

    # -- single-chain maths (the per-site logic is ppzoo.backends.sites') ------------------
    def _constrain_single(self, theta):
        """``(D,) -> ({site: value}, log|J|)`` through NumPyro's ``biject_to``."""
        return constrain(theta, self.layout, self._transforms)

    def _trace(self, args, kwargs, params, idx):
        data = dict(params)
        if self.layout.data_plate is not None:
            data[self.layout.data_plate] = idx
        return trace_numpyro(self.model, args, kwargs, data=data)

    def _sites(self, params, idx):
        """The run on the minibatch ``idx`` (the per-datum arguments sliced to it): its sites and the
        data plate's scale (:func:`~.sites.plate_scale`)."""
        args, kwargs = take_batch(self.args, self.kwargs, self.batch_args, idx)
        trace = self._trace(args, kwargs, params, idx)
        plates = {n: (int(s["args"][0]), int(s["value"].shape[0])) for n, s in trace.items() if s["type"] == "plate"}
        return numpyro_sites(trace)[0], plate_scale(plates, self.layout)

    def _batch_sizes(self, args, kwargs, idx):
        """Per observed site in the data plate, its distribution's and its value's size along the
        plate, in a run on ``idx``."""
        trace = self._trace(args, kwargs, {}, idx)
        return {s.name: plate_sizes(trace[s.name], s.plate_dim) for s in self.layout.observed}

    def _view(self, args, kwargs, idx):
        """The :class:`~.sites.ProgramView` of a run on ``idx`` with these arguments, the latents at
        :func:`at_check_point` (:func:`~.batching.check_data_reading`)."""
        trace = trace_numpyro(self.model, args, kwargs, data={self.layout.data_plate: idx}, point=at_check_point)
        plates = {n: (int(s["args"][0]), int(jnp.shape(s["value"])[0])) for n, s in trace.items() if s["type"] == "plate"}
        deterministic = [(n, s["value"], [f.name for f in s.get("cond_indep_stack", ())])
                         for n, s in trace.items() if s["type"] == "deterministic"]
        return program_view(numpyro_sites(trace)[0], plates, deterministic, self.layout, self.layout.latent_names)

    def _indexed_past(self, args, kwargs, idx):
        """The length of an array that a run on the plate's indices ``idx`` indexes past its end
        (JAX's ``checkify`` index checks: JAX itself clamps such an index), or ``None``."""

        def run(indices):
            self._trace(args, kwargs, {}, indices)

        try:
            error, _ = checkify.checkify(run, errors=checkify.index_checks)(idx)
        except Exception:  # noqa: BLE001 - a program checkify cannot follow (NumPy on its arguments) goes unchecked
            return None
        found = re.search(r"array of shape \((\d+)", error.get() or "")
        return int(found.group(1)) if found else None

    def _log_joint(self, params, idx):
        """``(log prior of the global sites, sum_{i in idx} log p(x_i | params))`` (the latter unscaled)."""
        sites, scale = self._sites(params, idx)
        return log_joint(sites, self.layout, params, scale)

    def _potential_single(self, theta, idx):
        params, log_det = self._constrain_single(theta)
        log_prior, log_lik = self._log_joint(params, idx)
        return -(log_prior + log_det) - (self.layout.num_data / idx.shape[0]) * log_lik

    def _chunks(self):
        n = self.layout.num_data
        size = min(n, FULL_DATA_CHUNK)
        whole = (n // size) * size
        return jnp.arange(whole).reshape(-1, size), (jnp.arange(whole, n) if whole < n else None)

    def _full_value_and_grad(self, theta):
        """Full-data potential and gradient, summing per-chunk gradients so memory stays O(chunk).

        The prior term comes from the run on the first chunk, with that chunk's likelihood: the
        program then gets all its data where N <= ``FULL_DATA_CHUNK``, its first 4,096 rows beyond (a
        program whose sites outside the data plate change with the rows it is given runs
        full-batch or is refused, :func:`~.batching.check_data_reading`)."""

        def first_term(th, idx):
            params, log_det = self._constrain_single(th)
            log_prior, log_lik = self._log_joint(params, idx)
            return -(log_prior + log_det + log_lik)

        def lik_term(th, idx):
            return -self._log_joint(self._constrain_single(th)[0], idx)[1]

        chunks, rest = self._chunks()
        value, grad = jax.value_and_grad(first_term)(theta, chunks[0])
        lik_vg = jax.value_and_grad(lik_term)

        def body(carry, idx):
            v, g = lik_vg(theta, idx)
            return (carry[0] + v, carry[1] + g), None

        (value, grad), _ = jax.lax.scan(body, (value, grad), chunks[1:])
        if rest is not None:
            (value, grad), _ = body((value, grad), rest)
        return value, grad

    def _pointwise_single(self, theta):
        """``(D,) -> (lp, {site: (N,)})``: ``lp = -U(theta)`` on all the data, and per observed
        site its log-likelihood per datum; one trace of the model serves both."""
        params, log_det = self._constrain_single(theta)
        sites, _ = self._sites(params, jnp.arange(self.layout.num_data))
        return log_density(sites, log_det), pointwise_log_likelihood({s.name: s for s in sites}, self.layout)

    def _deterministic_single(self, theta):
        """``(D,) -> {deterministic site: value}`` in a run on all the data."""
        idx = jnp.arange(self.layout.num_data)
        args, kwargs = take_batch(self.args, self.kwargs, self.batch_args, idx)
        trace = self._trace(args, kwargs, self._constrain_single(theta)[0], idx)
        return {s.name: trace[s.name]["value"] for s in self.layout.deterministic}

    # -- public chain-batched API --------------------------------------------
    def potential(self, theta, idx):
        return self._potential(theta, idx)

    def grad(self, theta, idx):
        return self._grad(theta, idx)

    def full_potential(self, theta):
        return self._full_potential(theta)

    def full_grad(self, theta):
        return self._full_grad(theta)

    def full_hvp(self, theta, v):
        return self._full_hvp(jnp.asarray(theta), jnp.asarray(v, dtype=jnp.asarray(theta).dtype))

    def pointwise(self, theta):
        lp, loglik = self._pointwise(jnp.asarray(theta))
        return np.asarray(lp), {k: np.asarray(v) for k, v in loglik.items()}

    def constrain(self, theta):
        return {k: np.asarray(v) for k, v in self._constrain(jnp.asarray(theta)).items()}

    def deterministic(self, theta):
        if not self.layout.deterministic:
            return {}
        return {k: np.asarray(v) for k, v in self._deterministic(jnp.asarray(theta)).items()}

    def unconstrain(self, values):
        return unconstrain({k: jnp.asarray(v) for k, v in values.items()}, self.layout, self._transforms)

    def strategy_values(self, init_strategy, num_chains, seed):
        runs = []
        for key in jax.random.split(jax.random.PRNGKey(seed), num_chains):
            fn = handlers.substitute(handlers.seed(self.model, rng_seed=key), substitute_fn=init_strategy)
            trace = handlers.trace(fn).get_trace(*self.args, **self.kwargs)
            runs.append({s.name: trace[s.name]["value"] for s in self.layout.latent})
        return {name: jnp.stack([run[name] for run in runs]) for name in runs[0]}

    def observed_data(self):
        return {k: np.asarray(v) for k, v in self._observed.items()}

    # -- array primitives ----------------------------------------------------
    def rng(self, seed):
        return jax.random.PRNGKey(seed)

    def init_positions(self, rng, num_chains, radius=2.0):
        rng, key = jax.random.split(rng)
        theta = jax.random.uniform(key, (num_chains, self.dim), minval=-radius, maxval=radius)
        if self.device is not None:
            theta = jax.device_put(theta, self.device)
        return theta, rng

    def minimize(self, theta, rng, num_steps, learning_rate, batch_size):
        key = ("minimize", num_steps, learning_rate, batch_size)
        if key not in self._block_cache:
            self._block_cache[key] = self._jit(partial(self._minimize, num_steps, learning_rate, batch_size))
        return self._block_cache[key](jnp.asarray(theta), rng)

    def _minimize(self, num_steps, learning_rate, batch_size, theta, rng):
        import optax

        n = self.layout.num_data
        optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, num_steps, alpha=0.01))

        def body(carry, _):
            theta, opt_state, rng = carry
            rng, key = jax.random.split(rng)
            idx = jax.random.randint(key, (theta.shape[0], batch_size), 0, n)
            updates, opt_state = optimizer.update(self._grad(theta, idx) / n, opt_state, theta)
            return (optax.apply_updates(theta, updates), opt_state, rng), None

        (theta, _, rng), _ = jax.lax.scan(body, (theta, optimizer.init(theta), rng), None, length=num_steps)
        return theta, rng

    def cond(self, pred, true_fn, false_fn, *operands):
        return jax.lax.cond(pred, true_fn, false_fn, *operands)

    def to_numpy(self, x):
        return np.asarray(x)

    def asarray(self, x):
        x = jnp.asarray(x, dtype=jnp.result_type(float))
        return jax.device_put(x, self.device) if self.device is not None else x

    def restore_array(self, x):
        x = jnp.asarray(np.asarray(x))
        return jax.device_put(x, self.device) if self.device is not None else x

    def rng_state(self, rng):
        return np.asarray(rng)

    def restore_rng(self, saved):
        return self.restore_array(np.asarray(saved, dtype=np.uint32))

    def run_block(self, kernel, state, rng, num_draws, thinning, tuning, method="update"):
        # one compiled block per (kernel settings, step method, length, thinning): tuning is data
        key = (kernel, method, num_draws, thinning)
        if key not in self._block_cache:
            step_fn = partial(getattr(kernel, method), self)
            block = partial(self._block, step_fn, kernel.batch_size, num_draws, thinning)
            self._block_cache[key] = self._jit(block)
        state, rng, positions, infos = self._block_cache[key](state, rng, tuning)
        return state, rng, np.asarray(positions), {k: np.asarray(v) for k, v in infos.items()}

    def _block(self, step_fn, batch_size, num_draws, thinning, state, rng, tuning):
        # Static-length scans: XLA runs them as tight loops (a dynamic trip
        # count costs several times more per step on CPU).
        num_chains = state.position.shape[0]
        n = self.layout.num_data

        def one_step(carry, _):
            state, rng = carry
            rng, k_idx, k_noise = jax.random.split(rng, 3)
            idx = jax.random.randint(k_idx, (num_chains, batch_size), 0, n)
            noise = jax.random.normal(k_noise, state.position.shape, state.position.dtype)
            state, info = step_fn(state, idx, noise, tuning)
            return (state, rng), info

        def draw(carry, _):
            carry, infos = jax.lax.scan(one_step, carry, None, length=thinning)
            return carry, (carry[0].position, reduce_info(infos, jnp))

        (state, rng), (positions, infos) = jax.lax.scan(draw, (state, rng), None, length=num_draws)
        return state, rng, positions, infos
