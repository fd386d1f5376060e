"""The SynOp loss (Sorbaro et al.): a training-time regulariser on synaptic operations.

SynOps per frame are estimated as the sum, over the activations feeding each layer, of
the events times that layer's fan-out (k*k*F for a conv, units for a dense); an event is
counted smoothly as tanh(level), so the estimate is differentiable.
The loss `alpha * ((S - S0) / S0)^2` pushes the estimate S toward a target S0. The input
layer's SynOps depend only on the data and are not part of S.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from akida_rt.tools.block_layers import Bits, build_layers
from akida_rt.tools.graph import describe_keras, group_blocks
from akida_rt.tools.training import shift_augment

log = logging.getLogger(__name__)


@dataclass
class SynOpTerm:
    """One activation tensor feeding a layer, and that layer's fan-out."""

    output: Any  # Keras tensor: the block's output (after pooling)
    step: Any  # the QuantizedReLU whose levels are counted
    fan_out: int
    layer: str  # the layer receiving these events


def synop_terms(model: keras.Model) -> list[SynOpTerm]:
    """The terms of the SynOp estimate of a quantized block model."""
    infos, _ = describe_keras(model)
    graph = group_blocks(infos)
    akida = [layer for layer in build_layers(graph, Bits()) if layer.has_weights]
    terms = []
    for block, nxt in zip(graph.blocks, akida[1:], strict=False):
        if block.activation is None or block.activation.kind != "qrelu":
            raise ValueError(
                f"{block.main.name}: SynOp loss needs quantized ReLUs (quantize first)"
            )
        last = block.layers[-1]
        terms.append(SynOpTerm(last.layer.output, block.activation.layer, nxt.fan_out, nxt.name))
    return terms


class SynOpEstimator:
    """Differentiable SynOps per frame of a model's hidden layers."""

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self.terms = synop_terms(model)
        self.probe = keras.Model(
            model.inputs[0], [model.outputs[0]] + [t.output for t in self.terms]
        )

    def __call__(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        """(model outputs, estimated SynOps per frame) for a batch."""
        outs = self.probe(x, training=training)
        logits, acts = outs[0], outs[1:]
        batch = tf.cast(tf.shape(x)[0], tf.float32)
        total = tf.constant(0.0)
        for term, act in zip(self.terms, acts, strict=True):
            # The chip counts events (non-zero levels), not levels: tanh(level) is a smooth
            # count whose gradient acts mostly on neurons one or two levels above zero.
            events = tf.reduce_sum(tf.tanh(act / term.step.step))
            total += float(term.fan_out) * events / batch
        return logits, total

    def estimate(self, x: np.ndarray, batch_size: int = 256) -> float:
        """Mean estimated SynOps per frame over `x` (inference mode)."""
        parts = []
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].astype(np.float32)
            parts.append(float(self(xb)[1]) * len(xb))
        return sum(parts) / len(x)


def synop_finetune(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    target: float,
    alpha: float = 1.0,
    epochs: int = 5,
    batch_size: int = 32,
    learning_rate: float = 3e-4,
    seed: int = 0,
    augment: int = 0,
    progress: Callable[[int], None] | None = None,
) -> keras.Model:
    """Fine-tune a quantized model with cross-entropy + the SynOp loss, in place.

    Args:
        target: S0, the estimated hidden-layer SynOps per frame to aim for.
        alpha: weight of the normalized SynOp term.
        progress: called with 1 after each batch.
    """
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    estimator = SynOpEstimator(model)
    optimizer = keras.optimizers.Adam(learning_rate)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    variables = model.trainable_variables
    s0 = tf.constant(float(target))

    @tf.function
    def step(xb: Any, yb: Any) -> Any:
        with tf.GradientTape() as tape:
            logits, s = estimator(xb, training=True)
            loss = loss_fn(yb, logits) + alpha * tf.square((s - s0) / s0)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return s

    for epoch in range(epochs):
        xe = shift_augment(x, rng, augment) if augment else x
        order = rng.permutation(len(xe))
        s = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            s = float(step(tf.constant(xe[idx].astype(np.float32)), tf.constant(y[idx])))
            if progress is not None:
                progress(1)
        log.info(
            "synop fine-tune epoch %d: estimated SynOps/frame %.0f (target %.0f)", epoch, s, target
        )
    return model
