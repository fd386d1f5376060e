"""Reference Keras architectures built from the blocks: the digits CNN and the MNIST walkthrough.

Both take raw uint8 images (as float) and start with a Rescaling layer, which the
converter reads as the input scaling `data_train = (data_raw - 0) / 255`.
"""

from __future__ import annotations

import keras
from akida_rt.tools.blocks import conv_block, dense_block

INPUT_SCALE = 255.0


def digits_cnn(
    weight_bits: int | None = None,
    activation: int | str | None = "relu6",
    input_weight_bits: int | None = 8,
    classes: int = 10,
    seed: int = 0,
    input_shape: tuple[int, int, int] = (32, 32, 1),
) -> keras.Model:
    """The core's digits CNN: 32x32x1 (`input_shape`) -> InputConv 3x3x16/2 -> conv 32 + pool
    -> conv 64 + pool -> conv 64 -> dense 10. Float by default (weight_bits None, ReLU6).
    `seed` sets the initial weights (with `training.fit(seed=...)`, a rerun trains the same
    model)."""
    keras.utils.set_random_seed(seed)
    first_bits = input_weight_bits if weight_bits is not None else None
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / INPUT_SCALE, name="rescale")(inputs)
    x = conv_block(
        x, 16, 3, strides=2, name="conv_0", weight_bits=first_bits, activation=activation
    )
    x = conv_block(
        x, 32, 3, pooling="max", name="conv_1", weight_bits=weight_bits, activation=activation
    )
    x = conv_block(
        x, 64, 3, pooling="max", name="conv_2", weight_bits=weight_bits, activation=activation
    )
    x = conv_block(x, 64, 3, name="conv_3", weight_bits=weight_bits, activation=activation)
    x = dense_block(x, classes, name="dense_4", weight_bits=weight_bits, activation=None)
    return keras.Model(inputs, x, name="digits_cnn")


def mnist_walkthrough(
    weight_bits: int | None = None,
    activation: int | str | None = "relu6",
    input_weight_bits: int | None = 8,
    seed: int = 0,
) -> keras.Model:
    """The toolkit's MNIST example: conv 32 5x5 + pool, conv 64 5x5 + pool, dense 512, dense 10
    (valid padding, no biases, batch-norm everywhere). Max-pooling follows the activation.
    `seed` sets the initial weights."""
    keras.utils.set_random_seed(seed)
    first_bits = input_weight_bits if weight_bits is not None else None
    inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Rescaling(1.0 / INPUT_SCALE, name="rescale")(inputs)
    x = conv_block(
        x,
        32,
        5,
        padding="valid",
        pooling="max",
        name="conv_0",
        weight_bits=first_bits,
        activation=activation,
    )
    x = conv_block(
        x,
        64,
        5,
        padding="valid",
        pooling="max",
        name="conv_1",
        weight_bits=weight_bits,
        activation=activation,
    )
    x = dense_block(x, 512, name="dense_2", weight_bits=weight_bits, activation=activation)
    x = dense_block(x, 10, name="dense_3", weight_bits=weight_bits, activation=None)
    return keras.Model(inputs, x, name="mnistnet")
