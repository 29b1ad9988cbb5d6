"""irc op -> TFLite builtin, for the ops that map one to one. The writer (``irc/backends/tflite/ops*.py``) emits
by these tables and the reader (``irc/frontends/tflite.py``) reads by their inverses, so the two cannot drift."""

from __future__ import annotations

# Arithmetic that takes a fused activation.
ARITHMETIC = {"add": "ADD", "sub": "SUB", "mul": "MUL", "div": "DIV"}

BINARY = {
    "maximum": "MAXIMUM", "minimum": "MINIMUM", "pow": "POW", "squared_difference": "SQUARED_DIFFERENCE",
    "floor_div": "FLOOR_DIV", "floor_mod": "FLOOR_MOD", "equal": "EQUAL", "not_equal": "NOT_EQUAL",
    "less": "LESS", "less_equal": "LESS_EQUAL", "greater": "GREATER", "greater_equal": "GREATER_EQUAL",
    "logical_and": "LOGICAL_AND", "logical_or": "LOGICAL_OR",
}

UNARY = {
    "neg": "NEG", "abs": "ABS", "sqrt": "SQRT", "rsqrt": "RSQRT", "exp": "EXP", "log": "LOG", "square": "SQUARE",
    "sin": "SIN", "cos": "COS", "floor": "FLOOR", "ceil": "CEIL", "round": "ROUND", "sign": "SIGN",
    "logical_not": "LOGICAL_NOT",
    "relu": "RELU", "relu6": "RELU6", "sigmoid": "LOGISTIC", "tanh": "TANH", "hard_swish": "HARD_SWISH",
    "elu": "ELU",
}

# Indexing ops with a builtin of their own (roll, dynamic_slice and tensor scatters are written as several builtins).
INDEXING = {"cumsum": "CUMSUM", "dynamic_update_slice": "DYNAMIC_UPDATE_SLICE", "top_k": "TOPK_V2",
            "gather_nd": "GATHER_ND", "scatter_nd": "SCATTER_ND"}

REDUCE = {"mean": "MEAN", "sum": "SUM", "max": "REDUCE_MAX", "min": "REDUCE_MIN", "prod": "REDUCE_PROD"}

# Activations the writer fuses into the producing op (``fused_activation_function``); others become separate ops.
FUSED = {"none": "NONE", "relu": "RELU", "relu6": "RELU6", "relu_n1_to_1": "RELU_N1_TO_1"}
SEPARATE = {"tanh": "TANH", "sigmoid": "LOGISTIC"}
ACTIVATION_OPS = {"relu": "RELU", "relu6": "RELU6", "relu_n1_to_1": "RELU_N1_TO_1", **SEPARATE}


def inverse(table: dict[str, str]) -> dict[str, str]:
    """TFLite builtin -> irc op, for the reader."""
    return {code: op for op, code in table.items()}


# Complex numbers: builtins, and the ops TFLite has no kernel for, written as Flex ops of these TF ops (the reader
# reads those back as the irc op rather than as an opaque ``tf.*`` node).
COMPLEX_PARTS = {"real": "REAL", "imag": "IMAG", "complex_abs": "COMPLEX_ABS"}
FLEX_CORE = {
    "complex": "Complex", "fft": "FFT", "ifft": "IFFT", "fft2d": "FFT2D", "ifft2d": "IFFT2D",
    "rfft": "RFFT", "irfft": "IRFFT", "rfft2d": "RFFT2D", "irfft2d": "IRFFT2D",
}
