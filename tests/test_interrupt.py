"""Ctrl-C at any moment of a run: a real SIGINT sent to a real ``ppzoo run`` subprocess.

The progress bar says where the run is ("set-up", "warmup", "sample", on stderr); the signal is
sent when the phase's name appears. The run must stop (never swallow the signal and go on), write
what it has, say where it stopped, and exit with status 130.
"""

import shutil
import signal
import subprocess
import sys
import threading
import time

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
