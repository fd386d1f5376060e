"""The offline toolchain (installed as akida_rt.tools): Keras models to akida_rt programs.

Modules that need TensorFlow/Keras import it themselves; `import akida_rt.tools` does not.

- quantizers, quantized_layers, blocks, models: quantization-aware Keras layers and blocks
- post_training: calibration (percentile) and post-training quantization
- synops: the SynOp loss and SynOp-aware fine-tuning
- graph, compatibility: the model as blocks, and the compatibility checker
- folding, converter: batch-norm/ReLU folding into integer thresholds, conversion
- report: the fit report (NPs, memory, SynOps, sequences, energy)
- datasets, training: the two packaged datasets, training and evaluation helpers
"""
