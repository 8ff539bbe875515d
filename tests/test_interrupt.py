"""Ctrl-C at any moment of a run: a real SIGINT sent to a real ``ppzoo run`` subprocess.

The progress bar says where the run is ("set-up", "warmup", "sample", on stderr); the signal is
sent when the phase's name appears. The run must stop (never swallow the signal and go on), write
what it has, say where it stopped, and exit with status 130.

Whatever the size of a block: a run whose blocks would take minutes answers the first Ctrl-C
within 3 s with its draws (blocks split by wall time, the draws unchanged), and a second Ctrl-C
during one long compiled call ends the process within 2 s.
"""

import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import slow_for

from ppzoo.diagnostics import arviz_compat

PPZOO = shutil.which("ppzoo")
# each run stops long before these settings would end it
LONG = ["--num-warmup", "20000", "--num-samples", "4000", "--thinning", "10", "--num-chains", "2"]


def interrupt_run(tmp_path, backend, marker, extra_wait=0.0, settings=LONG):
    """Start ``ppzoo run``, send SIGINT once ``marker`` is on its stderr, and return
    ``(returncode, stderr, seconds from signal to exit)``."""
    cmd = ([PPZOO] if PPZOO else [sys.executable, "-m", "ppzoo.cli"]) + [
        "run", "--backend", backend, *settings, "--out", "run.nc"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, found = [], threading.Event()

    def read():
        while chunk := proc.stderr.read(1):
            seen.append(chunk)
            if not found.is_set() and marker in "".join(seen[-200:]):
                found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert found.wait(timeout=300), f"{marker!r} never appeared: {''.join(seen)[-2000:]}"
        time.sleep(extra_wait)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        stopped = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    proc.stdout.read()
    return proc.returncode, "".join(seen), stopped


@pytest.mark.parametrize(
    "backend, marker, stage",
    slow_for([("pyro", "set-up", "set-up"), ("numpyro", "warmup", "warmup"), ("pyro", "sample", "sampling")],
             lambda case: case[2] != "set-up"),
)
def test_sigint_stops_the_run_and_keeps_what_it_has(tmp_path, backend, marker, stage):
    # a short warmup before the sampling case, so that it reaches its draws soon on a busy machine
    settings = LONG if stage != "sampling" else ["--num-warmup", "200", *LONG[2:]]
    code, stderr, stopped = interrupt_run(tmp_path, backend, marker, extra_wait=3.0 if stage == "sampling" else 0.5,
                                          settings=settings)
    assert code == 130, stderr[-2000:]
    assert f"interrupted during {stage}" in stderr
    assert "Exception ignored" not in stderr  # the signal was not lost in a callback
    assert stopped < 60
    idata = arviz_compat.from_netcdf(str(tmp_path / "run.nc"))
    posterior = arviz_compat.get_group(idata, "posterior")
    assert posterior.attrs["stopped_in"] == stage and posterior.attrs["interrupted"] == 1
    draws = posterior.sizes["draw"]
    if stage == "sampling":
        assert draws > 0 and arviz_compat.has_group(idata, "log_likelihood")
    else:
        # no draws; where the chains were is kept
        assert draws == 0 and arviz_compat.get_group(idata, "warmup_posterior")["w"].shape == (2, 1, 30)
    assert [p.name for p in tmp_path.iterdir()] == ["run.nc"]


FIT_SCRIPT = """
import sys, warnings
import numpy as np, torch, pyro, pyro.distributions as dist
import ppzoo

def model(x, y=None):
    w = pyro.sample("w", dist.Normal(torch.zeros(3), 1.0).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(x @ w, 1.0), obs=y)

x = torch.randn(200, 3)
y = x @ torch.tensor([1.0, -1.0, 0.5]) + torch.randn(200)
warnings.simplefilter("ignore")
fit = ppzoo.fit(model, pyro.infer.autoguide.AutoNormal(model), x, y=y, num_steps=10**6)
print("RESULT", fit.stop_reason, len(fit.losses), flush=True)
"""


def test_sigint_stops_a_fit_and_keeps_its_parameters(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", FIT_SCRIPT], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen, found = [], threading.Event()

    def read():
        while chunk := proc.stderr.read(1):
            seen.append(chunk)
            if not found.is_set() and "fit (pyro)" in "".join(seen[-100:]):
                found.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert found.wait(timeout=300), "".join(seen)[-2000:]
        time.sleep(3.0)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(seen)[-2000:]
    reason, steps = out.split("RESULT ", 1)[1].rsplit(" ", 1)
    assert reason.startswith("interrupted after") and 0 < int(steps) < 10**6


# A run whose compiled blocks are long: full-batch SGLD on 2,000 x 200 data takes about a
# millisecond a step, so a block of num_samples / 50 draws of `thinning` steps runs for minutes.
SLOW_SCRIPT = """
import sys, time, warnings
import numpy as np, jax.numpy as jnp, numpyro, numpyro.distributions as dist
import ppzoo

def model(x, y=None):
    w = numpyro.sample("w", dist.Normal(jnp.zeros(x.shape[1]), 1.0).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(x @ w, 1.0), obs=y)

rng = np.random.default_rng(0)
x = rng.standard_normal((2000, 200)).astype(np.float32)
y = (0.1 * x @ rng.standard_normal(200) + rng.standard_normal(2000)).astype(np.float32)
warnings.simplefilter("ignore")
idata = ppzoo.sample(model, x, y=y, method="sgld", step_size=1e-5, batch_size=2000, adapt=False, num_warmup=0,
                     num_samples=5000, thinning=int(sys.argv[1]), num_chains=2, log_likelihood=False)
print("RESULT", time.monotonic(), idata.posterior.sizes["draw"], idata.posterior.attrs["interrupted"], flush=True)
"""


def start_slow_run(tmp_path, thinning, steps_into_sampling):
    """Start ``SLOW_SCRIPT``; once its progress bar shows ``steps_into_sampling`` steps of sampling
    done, return the process, its stderr so far and the thread reading it."""
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SCRIPT, str(thinning)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, found = [], threading.Event()
    bar = re.compile(r"sample:\s+\d+%\|[^|]*\|\s*(\d+)/$")  # tqdm's "sample: 3%|...| done/"

    def read():
        while chunk := proc.stderr.read(1):
            seen.append(chunk)
            if not found.is_set() and chunk == "/" and (done := bar.search("".join(seen[-200:]))):
                if int(done.group(1)) >= steps_into_sampling:
                    found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not found.wait(timeout=300):
        proc.kill()
        pytest.fail(f"the run never reached its draws: {''.join(seen)[-2000:]}")
    return proc, seen, reader


@pytest.mark.slow
def test_first_ctrl_c_ends_a_run_of_long_blocks_within_seconds(tmp_path):
    # one block of 100 draws of 1,000 steps would take over a minute; calls of about half a
    # second (here one draw, the least a call makes) end the run soon after the signal, with its
    # draws (signalled once the first calls have been compiled and timed)
    proc, seen, reader = start_slow_run(tmp_path, thinning=1000, steps_into_sampling=3000)
    try:
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = proc.stdout.read()
    assert proc.returncode == 0, "".join(seen)[-2000:]
    returned, draws, interrupted = out.split("RESULT ", 1)[1].split()
    assert float(returned) - sent < 3.0  # sample() returned, its result built
    assert 3 <= int(draws) < 5000 and interrupted == "1"


@pytest.mark.slow
def test_second_ctrl_c_ends_the_process_inside_a_compiled_call(tmp_path):
    # one draw of 50,000 steps is one compiled call of tens of seconds: no signal handler runs in
    # it (the signals are sent once the call is compiled, some seconds into sampling: while it is
    # traced, Python code runs, and the second SIGINT raises KeyboardInterrupt there)
    proc, seen, reader = start_slow_run(tmp_path, thinning=50000, steps_into_sampling=0)
    try:
        time.sleep(6.0)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        stopped = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    out = proc.stdout.read()
    assert proc.returncode == 130, "".join(seen)[-2000:]
    assert stopped < 2.0
    assert "RESULT" not in out
    reader.join(timeout=10)
    assert "a second Ctrl-C came during a compiled computation: stopped at once" in "".join(seen)


def test_a_second_ctrl_c_in_python_code_raises_where_it_lands():
    # where the main thread runs Python code, the second SIGINT raises KeyboardInterrupt (the run
    # keeps what it has), and the process is not ended later
    import os

    from ppzoo.interrupt import check_interrupt, deferred_interrupt, interrupt_requested

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT has a handler of its own here")
    with deferred_interrupt():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        assert interrupt_requested()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)
        time.sleep(1.0)  # past the grace the watcher gives a handler: this process goes on
        with pytest.raises(KeyboardInterrupt):
            check_interrupt()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler and not interrupt_requested()
    assert signal.set_wakeup_fd(-1) == -1  # the wakeup fd there was (none) is back


def test_splitting_blocks_by_wall_time_keeps_the_draws(regression_data, monkeypatch):
    from conftest import LINEAR_REGRESSION
    from ppzoo.inference import SGLD, run_chains
    from ppzoo.inference.sgmcmc import driver

    from ppzoo.backends import make_backend

    x, y = regression_data
    settings = dict(num_samples=40, num_warmup=40, num_chains=2, thinning=3, adapt=False, progress_bar=False)
    calls = []

    def run(backend, **changes):
        with monkeypatch.context() as patch:
            for name, value in changes.items():
                patch.setattr(driver, name, value)
            return run_chains(SGLD(batch_size=8), backend, **settings)

    backend = make_backend(LINEAR_REGRESSION["numpyro"], (x,), {"y": y})
    whole = run(backend)
    block = backend.run_block
    backend.run_block = lambda kernel, state, rng, n, thinning, tuning, method="update": (
        calls.append(n) or block(kernel, state, rng, n, thinning, tuning, method))
    split = run(backend, BLOCK_SECONDS=1e-9, FIRST_BLOCK_STEPS=2)
    assert max(calls) == 1  # one draw a call, however short the time allowed
    np.testing.assert_array_equal(split.positions, whole.positions)
    for key, value in whole.stats.items():
        np.testing.assert_array_equal(split.stats[key], value)
