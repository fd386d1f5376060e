"""End-to-end pipelines: float training, calibration, quantization-aware fine-tuning, conversion.

Used by the benchmark and by make_demo_program; each step's accuracy is kept so the
float-to-program gap can be reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
from akida_rt.tools import models, training
from akida_rt.tools.converter import convert
from akida_rt.tools.datasets import Dataset
from akida_rt.tools.post_training import quantize_model

from akida_rt.model.model import Model

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    """The models of one run and their test accuracies."""

    float_model: Any
    quantized: Any
    program: Model
    float_accuracy: float
    ptq_accuracy: float
    keras_accuracy: float  # the quantized Keras model after fine-tuning
    program_accuracy: float  # the converted program, software backend
    agreement: training.Agreement


@dataclass
class Recipe:
    """Training settings of one pipeline run."""

    weight_bits: int = 4
    activation_bits: int = 4
    # per-block activation bits (quantize_model's layer_activation_bits), e.g. {"spikes": 1}
    layer_activation_bits: dict[str, int] = field(default_factory=dict)
    input_weight_bits: int = 8
    float_epochs: int = 15
    qat_epochs: int = 5
    percentile: float = 99.9
    calibration_samples: int = 512
    augment: int = 2
    learning_rate: float = 1e-3
    qat_learning_rate: float = 2e-4


def run_pipeline(
    build: Callable[[], Any],
    data: Dataset,
    recipe: Recipe,
    *,
    seed: int = 0,
    float_model: Any = None,
    progress: Callable[[int], None] | None = None,
) -> PipelineResult:
    """Train (unless `float_model` is given), quantize, fine-tune and convert one model."""
    if float_model is None:
        keras.utils.set_random_seed(seed)  # the initial weights too, so a rerun is identical
        float_model = build()
        training.fit(
            float_model,
            data.x_train,
            data.y_train,
            epochs=recipe.float_epochs,
            seed=seed,
            augment=recipe.augment,
            learning_rate=recipe.learning_rate,
            progress=progress,
        )
    float_acc = training.accuracy(training.keras_outputs(float_model, data.x_test), data.y_test)
    q = quantize_model(
        float_model,
        data.x_train[: recipe.calibration_samples],
        weight_bits=recipe.weight_bits,
        activation_bits=recipe.activation_bits,
        layer_activation_bits=recipe.layer_activation_bits,
        input_weight_bits=recipe.input_weight_bits,
        percentile=recipe.percentile,
    )
    ptq_acc = training.accuracy(training.keras_outputs(q, data.x_test), data.y_test)
    if recipe.qat_epochs:
        training.fit(
            q,
            data.x_train,
            data.y_train,
            epochs=recipe.qat_epochs,
            seed=seed + 1000,
            augment=recipe.augment,
            learning_rate=recipe.qat_learning_rate,
            progress=progress,
        )
    keras_out = training.keras_outputs(q, data.x_test)
    program = convert(q)
    program_out = training.program_outputs(program, data.x_test)
    result = PipelineResult(
        float_model,
        q,
        program,
        float_acc,
        ptq_acc,
        training.accuracy(keras_out, data.y_test),
        training.accuracy(program_out, data.y_test),
        training.agreement(keras_out, program_out),
    )
    log.info(
        "%s seed %d: float %.4f, PTQ %.4f, QAT %.4f, program %.4f",
        data.name,
        seed,
        float_acc,
        ptq_acc,
        result.keras_accuracy,
        result.program_accuracy,
    )
    return result


def digits(seed: int = 0, recipe: Recipe | None = None, **kw: Any) -> PipelineResult:
    """The digits CNN: float BN + ReLU6, then 8-bit input weights, 4-bit weights/activations."""
    from akida_rt.tools.datasets import load_digits_32

    return run_pipeline(models.digits_cnn, load_digits_32(), recipe or Recipe(), seed=seed, **kw)
