"""The end of a sampler run, fresh or resumed: its ArviZ result and the warnings a user must see.

Shared by :func:`ppzoo.sample` and :func:`ppzoo.resume`, so that a resumed run
reports exactly as an uninterrupted one.
"""

from __future__ import annotations

import json
import warnings

from ppzoo.diagnostics import arviz_compat, sampler_run_to_inference_data
from ppzoo.diagnostics.convergence import check_convergence
from ppzoo.interrupt import interrupt_requested

__all__ = ["finish_result", "warn_diverged"]


def finish_result(run, oracle, num_chains: int, log_likelihood: bool, stacklevel: int = 4):
    """The ArviZ result of a finished (or stopped) run, with the divergence and convergence
    warnings (none for a run stopped before its first draw)."""
    idata = sampler_run_to_inference_data(run, oracle, log_likelihood=log_likelihood)
    if interrupt_requested():
        warnings.warn("Ctrl-C came while the result was being built; it is returned whole (a second "
                      "Ctrl-C stops at once)", RuntimeWarning, stacklevel=stacklevel - 1)
    if run.positions.shape[1] == 0:  # stopped before its first draw (the driver said so)
        return idata
    warn_diverged(idata, num_chains, stacklevel=stacklevel)
    check_convergence(idata, warn=True, stacklevel=stacklevel, latent=[site.name for site in oracle.layout.latent])
    return idata


def warn_diverged(idata, num_chains: int, stacklevel: int = 2) -> None:
    """One ``RuntimeWarning`` naming the chains that diverged (``attrs["diverged_chains"]``), where,
    and what the result holds instead."""
    recorded = arviz_compat.get_group(idata, "posterior").attrs.get("diverged_chains")
    if not recorded:
        return
    diverged = json.loads(recorded)
    where = ", ".join(f"chain {d['chain']} at draw {d['draw']} (sampler step {d['step']})" for d in diverged)
    if arviz_compat.has_group(idata, "diverged_posterior"):
        kept = (f"the result holds the other {num_chains - len(diverged)} chains, so their summaries and az.loo "
                "stay usable; the diverged chains' draws are in the diverged_posterior group")
    else:
        kept = "no chain stayed finite, so summaries over these draws are NaN"
    warnings.warn(
        f"{len(diverged)} of {num_chains} chains diverged (a position or the log density stopped being finite): "
        f"{where}; {kept}. Reduce step_size, or look at the model where it diverged",
        RuntimeWarning, stacklevel=stacklevel,
    )
