"""The generated optimizer equals torch.optim, step for step.

For every optimizer of the catalog, with its defaults and with non-default variants (dampening,
weight decay, lr decay, an initial accumulator, centred RMSprop with momentum, AMSGrad, other
betas), the `update` of a generated model.py and the corresponding torch.optim class take 20 steps
from the same parameters with the same random gradients, in float64. Parameters and state must
agree to a relative 1e-12 after every step.

PyTorch is a test-only dependency (`pip install torch`, the CPU build is enough). Without it these
tests are skipped, unless DERIVE_REQUIRE_TORCH is set (CI sets it), in which case they fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from derive.catalog.optimizers import OPTIMIZERS, optimizer_of, resolve_optimizer
from derive.run import model_source
from derive.training import derive_training
from derive.verify import load_module

from conftest import derivation_for, torch_or_skip_module

torch = torch_or_skip_module()

STEPS = 20
TOLERANCE = 1e-12
CASES = [
    "sgd", "sgd:lr=0.05,weight_decay=0.1",
    "momentum", "momentum:lr=0.01,momentum=0.5,dampening=0.3,weight_decay=0.01",
    "nesterov", "nesterov:lr=0.02,momentum=0.8,weight_decay=0.1",
    "adagrad", "adagrad:lr=0.1,lr_decay=0.1,initial_accumulator_value=0.5,weight_decay=0.1,eps=1e-6",
    "rmsprop", "rmsprop:alpha=0.9,centered=true,momentum=0.9,weight_decay=0.1",
    "adam", "adam:lr=0.01,betas=(0.8,0.99),amsgrad=true,weight_decay=0.1",
    "adamw", "adamw:lr=0.01,beta1=0.5,amsgrad=true,weight_decay=0.2,eps=1e-6",
]


def test_every_optimizer_is_covered():
    assert {case.split(":")[0] for case in CASES} == set(OPTIMIZERS)


def _relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    scale = np.maximum(np.abs(theirs), 1e-300)
    return float(np.max(np.abs(ours - theirs) / scale))


@pytest.mark.parametrize("case", CASES)
def test_update_matches_torch_optim_for_20_steps(case):
    assert torch is not None, "DERIVE_REQUIRE_TORCH is set but PyTorch is not installed"
    choice = resolve_optimizer(case)
    source = model_source(derivation_for(1, "identity"), title="t", command="t", training=derive_training(choice))
    module = load_module(source, "model_torch_test")
    opt = optimizer_of(choice)
    values = opt.values(choice)

    rng = np.random.default_rng(7)
    params = {"W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal((3, 1))}
    tensors = {k: torch.tensor(v.copy(), dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    reference = eval(opt.torch_class, {"torch": torch})(list(tensors.values()), **opt.torch_kwargs(values))  # noqa: S307 - catalog text
    state = module.init_state(params, **{h.name: values[h.name] for h in opt.hypers if h.init_only})

    worst, compared = 0.0, 0
    for _ in range(STEPS):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        module.update(params, grads, state)
        for key, tensor in tensors.items():
            tensor.grad = torch.tensor(grads[key], dtype=torch.float64)
        reference.step()
        for key, tensor in tensors.items():
            worst = max(worst, _relative(params[key], tensor.detach().numpy()))
            for name, theirs in reference.state[tensor].items():
                if name in state and name != "step":
                    worst = max(worst, _relative(state[name][key], theirs.numpy()))
                    compared += 1
            assert state["step"] == int(reference.state[tensor].get("step", state["step"]))
    assert worst <= TOLERANCE, f"{case}: largest relative difference {worst:.2e}"
    assert compared > 0 or not opt.state  # the state was compared too, where torch keeps one
