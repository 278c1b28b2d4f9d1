"""Run backpropagation over a whole model: the δ-form of every layer, per sample and per minibatch.

The order is the backward pass itself: the loss gives ∂C/∂a⁽ᴸ⁾, the output activation turns it into
δ⁽ᴸ⁾, each dense layer turns δ⁽ˡ⁾ into its parameter gradients and into ∂C/∂a⁽ˡ⁻¹⁾, which the
activation below turns into δ⁽ˡ⁻¹⁾. The same pieces, applied to the symbolic layer l, give the
general recursion the documents show before the layer-by-layer formulas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from derive.backprop import (
    Pass,
    Result,
    Step,
    dense_forward,
    forward_equations,
    input_gradient,
    layer_error,
    loss_equation,
    loss_gradient,
    parameter_gradients,
    update_rule,
)
from derive.layers import ActivationLayer, Dense
from derive.model import Model
from derive.notation import LayerRef
from derive.parallel import Background
from derive.rewrite import ActivationDerivative, activation_derivative


@dataclass
class Derivation:
    model: Model
    sample: Pass
    batch: Pass
    general: Pass | None  # the hidden-layer recursion and gradients for a symbolic layer l
    updates: dict[str, list[Step]] = field(default_factory=dict)
    general_forward: tuple[Result, Result] | None = None  # z⁽ˡ⁾ of a general layer l: per sample, minibatch
    activation_derivatives: tuple[ActivationDerivative, ...] = ()

    def passes(self) -> list[Pass]:
        return [p for p in (self.sample, self.batch, self.general) if p is not None]


def _backward(model: Model, batch: bool) -> Pass:
    result = Pass(batch)
    depth = model.depth
    for layer in range(1, depth + 1):
        z, a = forward_equations(model.dense(layer), model.activation_layer(layer), batch)
        result.results[f"z_{layer}"], result.results[f"a_{layer}"] = z, a
    result.results["cost"] = loss_equation(model.loss_layer, batch)

    steps, upstream, grad = loss_gradient(model.loss_layer, batch)
    result.add(f"grad_a_{depth}", steps, grad)
    steps, delta = layer_error(
        model.activation_layer(depth),
        upstream,
        batch,
        probability_targets=model.loss.target == "probability",
        output_layer=True,
    )
    result.add(f"delta_{depth}", steps, delta)
    for layer in range(depth, 0, -1):
        dense = model.dense(layer)
        w_steps, w, b_steps, b = parameter_gradients(dense, batch, model.penalty)
        result.add(f"grad_W_{layer}", w_steps, w)
        result.add(f"grad_b_{layer}", b_steps, b)
        if layer > 1:
            in_steps, upstream = input_gradient(dense, batch)
            err_steps, delta = layer_error(model.activation_layer(layer - 1), upstream, batch)
            result.add(f"delta_{layer - 1}", in_steps + err_steps, delta)
    return result


def _general(model: Model) -> Pass | None:
    """The recursion for a hidden layer l, when every hidden layer has the same activation."""
    activation = model.uniform_hidden_activation
    if activation is None:
        return None
    result = Pass(batch=False)
    l = LayerRef.symbolic()
    in_steps, upstream = input_gradient(Dense(l.shifted(1)), False)
    err_steps, delta = layer_error(ActivationLayer(l, activation), upstream, False)
    result.add("delta_l", in_steps + err_steps, delta)
    w_steps, w, b_steps, b = parameter_gradients(Dense(l), False, model.penalty)
    result.add("grad_W_l", w_steps, w)
    result.add("grad_b_l", b_steps, b)
    batch_w_steps, batch_w, batch_b_steps, batch_b = parameter_gradients(Dense(l), True, model.penalty)
    result.add("batch_grad_W_l", batch_w_steps, batch_w)
    result.add("batch_grad_b_l", batch_b_steps, batch_b)
    return result


def _minibatch_and_general(model: Model) -> tuple[Pass, Pass | None, dict[str, list[Step]]]:
    """The minibatch pass, the general layer l and the update rules (one unit of background work)."""
    batch = _backward(model, batch=True)
    general = _general(model)
    updates = {
        str(layer): update_rule(model.dense(layer), batch.results[f"grad_W_{layer}"], batch.results[f"grad_b_{layer}"])
        for layer in range(1, model.depth + 1)
    }
    if general is not None:
        updates["l"] = update_rule(
            Dense(LayerRef.symbolic()), general.results["batch_grad_W_l"], general.results["batch_grad_b_l"]
        )
    return batch, general, updates


class PendingDerivation:
    """A derivation whose minibatch half has been started in a second process (where the platform
    forks); `result()` derives the per-sample half here and joins the two. Work that does not need
    the derivation can run between the two calls, while the second process derives."""

    def __init__(self, model: Model):
        self.model = model
        self._background = Background(_minibatch_and_general, model)

    def result(self) -> Derivation:
        model = self.model
        sample = _backward(model, batch=False)
        elementwise = dict.fromkeys(a for a in model.activations if not a.is_vector)
        general_dense = Dense(LayerRef.symbolic())
        general_forward = (dense_forward(general_dense, False), dense_forward(general_dense, True))
        batch, general, updates = self._background.result()
        return Derivation(
            model,
            sample,
            batch,
            general,
            updates=updates,
            activation_derivatives=tuple(activation_derivative(a) for a in elementwise),
            general_forward=general_forward,
        )


def start_derivation(model: Model) -> PendingDerivation:
    return PendingDerivation(model)


def derive(model: Model) -> Derivation:
    """Derive everything; the minibatch half runs in a second process where the platform forks."""
    return start_derivation(model).result()
