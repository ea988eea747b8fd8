"""Methods, each one record declared in its own module and read by everyone (docs/architecture.md):

    seqkd           sft x steps                                                      (seqkd.py)
    gad             warmup x warmup_steps, then adversarial; the paper's ablations are its switches  (gad.py)
    gad-offpolicy   sft x warmup_steps, then D alone x offpolicy_d_steps, then adversarial against that D,
                    frozen: the paper's off-policy discriminator                      (offpolicy.py)

The records (`Method`, `Stage`, `Identity`) and the registry are in `base`; the updates steps are made of in
`updates`; the models a step works on in `context`; fixed GRPO rewards in `rewards`; cost estimates in `cost`.
A new method is one `register_method(Method(...))`.
"""

from gadbench.methods import gad, offpolicy, seqkd  # noqa: F401  (register the built-in methods)
from gadbench.methods.base import (
    METHODS,
    Identity,
    Method,
    PlannedStage,
    Stage,
    estimate_run,
    eval_steps,
    identity_of,
    method_of,
    register_method,
    stage_plan,
    uses_discriminator,
)

__all__ = ["METHODS", "Identity", "Method", "PlannedStage", "Stage", "estimate_run", "eval_steps", "identity_of",
           "method_of", "register_method", "stage_plan", "uses_discriminator"]
