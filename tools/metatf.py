"""Import BrainChip MetaTF models for the AKD1000 (Akida 1.0 / v1 layers, `.fbz`).

The only module that imports BrainChip's `akida` package (the [metatf] extra). It reads
the model through it, describes each layer in v1 terms and stores it in akida_rt's rule set
(akida_rt.format.v1_layers).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from akida_rt.akd1000.decode import V1Layer
from akida_rt.errors import AkidaError, ConversionError, ModelError
from akida_rt.format import program as fmt
from akida_rt.format import v1_rules
from akida_rt.format.layers import Layer
from akida_rt.format.v1_layers import from_v1
from akida_rt.learning import edge as learning
from akida_rt.limits import AKIDA_CHILD_BYTES, cap_address_space
from akida_rt.model.model import Model

V1_TYPES = (
    "InputData",
    "InputConvolutional",
    "Convolutional",
    "SeparableConvolutional",
    "FullyConnected",
)
# Codes of akida.Padding and akida.PoolType as the layer parameters hold them.
V1_PADDINGS = {0: "valid", 1: "same"}
V1_POOL_MAX, V1_POOL_AVERAGE = 1, 2
MAX_FBZ_BYTES = 512 << 20  # a MetaTF model file akida_rt imports
CHILD_TIMEOUT_S = 300.0


def _akida() -> Any:
    try:
        import akida
    except ModuleNotFoundError:
        raise ConversionError(
            "importing MetaTF models needs BrainChip's akida package: "
            "pip install 'akida-rt[metatf]'"
        ) from None
    return akida


def import_model(source: str | os.PathLike[str] | Any, name: str | None = None) -> Model:
    """An akida_rt Model computing exactly what the v1 model `source` computes.

    Args:
        source: a `.fbz` path, or an `akida.Model` already in memory.
        name: the model's name (default: the file's stem, or "metatf").

    Raises:
        ConversionError: the file cannot be read, is not a v1 model, or holds a layer
            akida_rt cannot represent (the message names the layer and why).
    """
    akida = _akida()
    if not isinstance(source, akida.Model):
        path = Path(source)
        return _import_in_child(_read_once(path), name or path.stem, str(path))
    src, default_name = source, "metatf"
    version = str(src.ip_version).rsplit(".", 1)[-1]
    layers = list(src.layers)
    if version != "v1":
        first = next((x for x in layers if _kind(x) not in (*V1_TYPES, "Quantizer")), None)
        what = f"layer '{first.name}' ({_kind(first)}) is an Akida 2.0 layer: " if first else ""
        raise ConversionError(
            f"{what}model is for Akida {version}; akida_rt imports Akida 1.0 (v1, AKD1000) models"
        )
    model = Model(name=name or default_name)
    try:
        if layers and _kind(layers[0]) == "Quantizer":
            _check_input_quantizer(layers[0], layers[1] if len(layers) > 1 else None)
            layers = layers[1:]
        for i, layer in enumerate(layers):
            model.add(_layer(layer, i, is_last=i == len(layers) - 1))
        model.validate()
    except ModelError as exc:
        raise ConversionError(str(exc)) from None
    if src.learning is not None:
        model.learning = _learning_state(src, model)
    return model


def _learning_state(src: Any, model: Model) -> Any:
    """The learning configuration with akida's state: the learned connections are the
    last layer's weights (imported above); each neuron's plasticity is its `thswap`
    (the connections it may still move) over num_weights (v1_rules.plasticity_of_swaps).
    akida's per-neuron `threshold_learning` has no counterpart in our rule: it is carried
    for `akida export` only. The sample count starts at 0 (docs/semantics.md, section 8)."""
    cfg = learning.config_of(src.learning)
    last = src.layers[-1]
    names = last.get_variable_names()
    if "thswap" in names:
        swaps = last.get_variable("thswap")
        plasticity = v1_rules.plasticity_of_swaps(swaps, cfg.num_weights)
        fmt.encode_tensor(plasticity, cfg.plasticity)
    if "threshold_learning" in names:
        gate = last.get_variable("threshold_learning").astype(np.int32)
        fmt.encode_tensor(gate, cfg.v1_learning_gate)
    learning.check_config(cfg, model.layers)
    return cfg


def _read_once(path: Path) -> bytes:
    """The file's bytes, read once through one descriptor: nothing reads it by name again."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FBZ_BYTES:
                raise ConversionError(
                    f"{path}: {size} bytes; MetaTF models akida_rt imports are at most "
                    f"{MAX_FBZ_BYTES >> 20} MiB"
                )
            return f.read(MAX_FBZ_BYTES + 1)[:MAX_FBZ_BYTES]
    except FileNotFoundError:
        raise ConversionError(f"no such MetaTF model file: {path}") from None
    except IsADirectoryError:
        raise ConversionError(f"no such MetaTF model file: {path} (a folder)") from None
    except OSError as exc:
        raise ConversionError(f"{path}: cannot read it: {exc.strerror}") from None


def _import_in_child(data: bytes, name: str, where: str) -> Model:
    """Parse and import `data` in a child process under a memory limit: akida crashes the
    process it runs in (SIGSEGV) on truncated or corrupt files, and ours must survive.
    The child gets the bytes on stdin and answers with the program's bytes."""
    cmd = [sys.executable, "-m", "akida_rt.tools.metatf", name]
    try:
        done = subprocess.run(cmd, input=data, capture_output=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ConversionError(
            f"{where}: akida did not finish reading it in {CHILD_TIMEOUT_S:g} s"
        ) from None
    if done.returncode < 0:
        raise ConversionError(
            f"{where}: not a readable MetaTF model (akida crashed reading it, signal "
            f"{-done.returncode}: the file is truncated or corrupt, or needs more than "
            f"{AKIDA_CHILD_BYTES >> 30} GiB)"
        )
    if done.returncode:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or ["unknown error"]
        raise ConversionError(f"{where}: {lines[-1]}")
    return Model(done.stdout)


def _child_main(name: str) -> int:
    """The child's side: stdin's bytes in a memfd akida reads, our program on stdout; an
    error as one line on stderr and exit status 2."""
    data = sys.stdin.buffer.read()
    akida = _akida()
    cap_address_space(AKIDA_CHILD_BYTES)
    fd = os.memfd_create("fbz", os.MFD_CLOEXEC)
    os.write(fd, data)
    try:
        try:
            src = akida.Model(f"/proc/self/fd/{fd}")
        except Exception as exc:  # akida raises plain ValueError/RuntimeError on bad files
            raise ConversionError(f"not a readable MetaTF model ({exc})") from None
        program = import_model(src, name).to_bytes()
    except AkidaError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    sys.stdout.buffer.write(program)
    return 0


def _kind(src: Any) -> str:
    return str(src.parameters.layer_type).rsplit(".", 1)[-1]


def _check_input_quantizer(src: Any, following: Any | None) -> None:
    """The `Quantizer` cnn2snn puts in front of a model quantized from float inputs.

    akida passes uint8 inputs through it unchanged, whatever its scales (measured on
    akida 2.19.3), so in front of an input layer of its width it is imported as no
    layer: the model takes the same uint8 inputs. On float32 inputs akida computes
    v1_rules.quantize_input (akida_rt models take uint8 only). Other quantizers are refused.
    """
    p = src.parameters
    where = f"layer '{src.name}' (Quantizer)"
    if following is None:
        raise ConversionError(f"{where}: a model with nothing after its input quantizer")
    bits = getattr(p, "output_bits", 0)
    if getattr(p, "output_signed", 0):
        raise ConversionError(f"{where}: signed {bits}-bit outputs; v1 AKD1000 inputs are unsigned")
    nxt = _kind(following)
    next_bits = 8 if nxt == "InputConvolutional" else getattr(following.parameters, "input_bits", 0)
    if nxt not in ("InputConvolutional", "InputData") or bits != next_bits:
        raise ConversionError(
            f"{where}: {bits}-bit outputs into {nxt} '{following.name}' ({next_bits}-bit "
            "inputs); akida_rt imports a quantizer only in front of an input layer of its width"
        )


def _layer(src: Any, index: int, is_last: bool) -> Layer:
    kind = _kind(src)
    name = src.name or f"layer_{index}"
    where = f"layer '{name}' ({kind})"
    if kind not in V1_TYPES:
        raise ConversionError(f"{where}: not an Akida 1.0 layer; only {', '.join(V1_TYPES)}")
    return from_v1(describe(src, kind, where), name, is_last)


def describe(src: Any, kind: str, where: str) -> V1Layer:
    """An akida layer as a V1Layer (akida's parameters and variables, checked)."""
    p = src.parameters
    x, y, c = (int(d) for d in src.input_dims)
    shape = (x, y, c)
    if kind == "InputData":
        if getattr(p, "input_signed", 0):
            raise ConversionError(f"{where}: signed inputs are not v1 AKD1000 inputs")
        return V1Layer(kind, shape, input_bits=p.input_bits)
    names = src.get_variable_names()
    wanted = ("weights", "weights_pw", "threshold", "act_step", "threshold_learning", "thswap")
    variables = {n: src.get_variable(n) for n in wanted if n in names}
    activation = bool(p.activation)
    act_bits = int(p.act_bits)  # kept without activation: the NPs hold it (ACT_BITS)
    if kind == "FullyConnected":
        return V1Layer(kind, shape, p.units, weights_bits=p.weights_bits, variables=variables,
                       activation=activation, act_bits=act_bits)  # fmt: skip
    k = _square(p, "kernel_width", "kernel_height", "kernel", where)
    stride = _square(p, "stride_x", "stride_y", "stride", where)
    padding = V1_PADDINGS.get(int(p.padding))
    if padding is None:
        raise ConversionError(f"{where}: padding code {int(p.padding)}; v1 uses Same or Valid")
    pool, size, pool_stride = "none", 1, 1
    if int(p.pool_type) == V1_POOL_MAX:
        pool = "max"
        size = _square(p, "pooling_width", "pooling_height", "pool size", where)
        pool_stride = _square(p, "pooling_stride_x", "pooling_stride_y", "pool stride", where)
    elif int(p.pool_type) == V1_POOL_AVERAGE:
        if p.pooling_width > 0:
            raise ConversionError(f"{where}: average pooling over windows (only global)")
        pool = "average"
    padding_value = int(p.padding_value) if kind == "InputConvolutional" else 0
    return V1Layer(kind, shape, p.filters, k, stride, padding, padding_value, pool, size,
                   pool_stride, p.weights_bits, 0, activation, act_bits, variables)  # fmt: skip


def _square(p: Any, a: str, b: str, what: str, where: str) -> int:
    x, y = getattr(p, a), getattr(p, b)
    if x != y:
        raise ConversionError(f"{where}: {what} {x}x{y} is not square; akida_rt needs square")
    return int(x)


def import_file(source: str | os.PathLike[str], output: str | os.PathLike[str]) -> Model:
    """Import `source` (.fbz) and save it as a program file at `output`."""
    model = import_model(source)
    model.save(output)
    return model


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1]))
