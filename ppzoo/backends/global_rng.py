"""The user's global random state, left as it was.

ppzoo draws its own randomness from seeded generators, but tracing a Pyro program draws its
latents from torch's global generator (the PPL is detected by tracing), and importing a PPL on
first use may draw from NumPy's global ``RandomState``. A user who seeded either would find it
moved by a ``ppzoo.sample`` call; :func:`global_rng_kept` puts both back.
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np

__all__ = ["global_rng_kept"]


@contextlib.contextmanager
def global_rng_kept():
    """NumPy's global random state and, if torch is imported, torch's CPU generator and the
    initialised CUDA generators, restored on leaving the block (however it is left)."""
    numpy_state = np.random.get_state()
    torch = sys.modules.get("torch")  # not imported: the user has no torch state to keep
    torch_state = torch.get_rng_state() if torch is not None else None
    cuda_states = torch.cuda.get_rng_state_all() if torch is not None and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        if torch_state is not None:
            torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
