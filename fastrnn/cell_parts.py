"""Whether a declared cell has every part a cell needs, checked by the cell's name
(``cells.py``'s docstring lists the parts and states a step's contract). It lives apart from
``cells.py`` because the parts import the declaration, which imports none of them.
"""
from __future__ import annotations

import inspect

from .cells import BACKWARD_STEP_ARGS, FORWARD_STEP_ARGS, cell_of


def missing_parts(name: str) -> list[str]:
    """What the declared cell ``name`` (``cells.CELLS``) lacks of the parts every cell needs,
    one line each, starting with where the part belongs; [] when it has them all. Imports the
    kernels (and so Numba) when called."""
    from . import gradients, recipes, reference, webpage
    from .kernels import stack

    cell = cell_of(name)
    missing = []
    if name not in stack.STEPS:
        missing.append("kernels/stack.py STEPS: no step pair (forward_step, backward_step)")
    else:
        for step, args in zip(stack.STEPS[name], (FORWARD_STEP_ARGS, BACKWARD_STEP_ARGS)):
            got = tuple(inspect.signature(getattr(step, "py_func", step)).parameters)
            if got != args:
                missing.append(f"kernels/stack.py STEPS: {step.__name__} takes ({', '.join(got)}), "
                               f"not the contract's ({', '.join(args)})")
    if name not in reference.STEPS:
        missing.append("reference.py STEPS: no NumPy step pair")
    if name not in gradients._BATCHED_STEPS:
        missing.append("gradients.py _BATCHED_STEPS: no step for the gradient check's batched loss")
    page = webpage.sampler_steps()
    if name not in page:
        missing.append("web/sampler.js STEPS: no step for the page's sampler")
    elif page[name] != (cell.gates, cell.carried):
        gates, carried = page[name]
        missing.append(f"web/sampler.js STEPS: declares {gates} gates carrying {', '.join(carried)}, not "
                       f"{cell.gates} carrying {', '.join(cell.carried)}")
    if name not in recipes.RECIPES:
        missing.append("recipes.py RECIPES: no recipe (training would fall back to the classic cell's)")
    return missing
