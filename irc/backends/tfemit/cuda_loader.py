"""Loads an irc CUDA SavedModel: GPU memory growth on, and a CPU fallback with one clear warning.

irc's cuda target copies this file beside the SavedModel it writes, as ``loader.py``::

    from loader import load              # or: python loader.py --input in.npz --output out.npz
    serve = load()                       # the serving function; call it with the model's inputs by name
    outputs = serve(image=batch)

The model's ops are placed on ``/GPU:0``. Without a GPU, TensorFlow's soft placement runs them on the CPU. A model
written in the NCHW layout (which CPU convolutions do not support) has a portable NHWC ``serving_default`` signature
(what TF Serving or ``tf.saved_model.load`` get) and the NCHW one as ``serving_gpu``, returned here on a GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
_warned = False


def load(path: str | os.PathLike = HERE):
    """The serving function of the SavedModel at ``path``, for the GPU when there is one, else for the CPU."""
    global _warned
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)  # take GPU memory as needed, not all at once
        except RuntimeError:  # the GPUs were initialized before this call; the setting is fixed by then
            pass
    model = tf.saved_model.load(str(path))
    signatures = model.signatures
    if gpus:
        serve = signatures["serving_gpu"] if "serving_gpu" in signatures else signatures["serving_default"]
    else:
        if not _warned:
            _warned = True
            warnings.warn(f"no GPU found: running the CUDA model {Path(path).name!r} on the CPU instead",
                          RuntimeWarning, stacklevel=2)
        serve = signatures["serving_default"]
    serve.irc_model = model  # keeps the variables alive as long as the function
    return serve


def main(argv=None) -> int:
    import numpy as np

    parser = argparse.ArgumentParser(description="Run the irc CUDA model in this directory on an .npz of inputs.")
    parser.add_argument("--input", required=True, help=".npz of the model's inputs, by name")
    parser.add_argument("--output", required=True, help=".npz to write the outputs to")
    parser.add_argument("--model", default=str(HERE), help="SavedModel directory (default: this one)")
    args = parser.parse_args(argv)
    serve = load(args.model)
    with np.load(args.input, allow_pickle=False) as data:
        inputs = {key: data[key] for key in data.files}
    outputs = serve(**inputs)
    np.savez(args.output, **{key: value.numpy() for key, value in outputs.items()})
    print(f"wrote {', '.join(outputs)} to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
