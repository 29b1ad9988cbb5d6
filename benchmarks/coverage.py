"""Coverage: every keras.applications family and keras-hub backbone, small and with random weights, through irc.

    .venv/bin/python benchmarks/coverage.py                    # every model below; prints a markdown table
    .venv/bin/python benchmarks/coverage.py bert gpt2 vgg16    # some of them
    .venv/bin/python benchmarks/coverage.py --json out.json

For each model (built here from a small config, no presets, nothing downloaded, and exported as a SavedModel with
static input shapes) it measures:
- convert time, whole process against whole process: ``irc lower MODEL --emit tflite -o OUT`` against
  ``python -c`` running ``TFLiteConverter.from_saved_model(MODEL).convert()``;
- size: irc's .tflite over TF's;
- error: the largest absolute difference of irc's .tflite (run in TensorFlow's TFLite interpreter) from the
  SavedModel run by TensorFlow, relative to each output's own scale (max |output|), beside TF's own file's.
  The keras.applications models keep their head (10 classes, no softmax), so logits are compared.

tests/test_coverage_models.py checks a representative subset of ``MODELS`` the same way (fast path, reference
interpreter, TFLite's interpreter) within the CI budget.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SEQ = 8  # tokens per sequence for the text backbones
VOCAB = 64


class Spec(NamedTuple):
    family: str
    build: Callable[[], object]  # -> a Keras model
    expected_gap: str = ""  # what irc lacks for it on this branch (another helper's ops), "" when it should pass


def _app(name: str, size: int = 32, **kwargs):
    def build():
        import keras

        fn = getattr(keras.applications, name)
        # the logits of a 10-class head: random-weight features shrink through a deep net, and a head (with no
        # softmax to saturate) keeps the output one that the error measure below can take its own scale from
        return fn(weights=None, include_top=True, classes=10, classifier_activation=None,
                  input_shape=(size, size, 3), **kwargs)

    return build


def _hub(name: str, **config):
    def build():
        import keras_hub

        return getattr(keras_hub.models, name)(**config)

    return build


def _conv3d_cnn():
    """A small 3-D CNN over 8x16x16 volumes (TF's converter writes its 3-D pools as Flex ops)."""
    import keras

    layers = keras.layers
    return keras.Sequential([
        keras.Input((8, 16, 16, 3)),
        layers.Conv3D(8, 3, padding="same", activation="relu"),
        layers.MaxPooling3D(2),
        layers.Conv3D(16, 3, padding="same", activation="relu"),
        layers.AveragePooling3D(2),
        layers.Conv3DTranspose(8, 3, strides=2, padding="same"),
        layers.GlobalAveragePooling3D(),
        layers.Dense(10),
    ])


_TEXT = {"vocabulary_size": VOCAB, "num_layers": 2, "num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32}
_DECODER = {"vocabulary_size": VOCAB, "num_layers": 2, "num_query_heads": 2, "num_key_value_heads": 1,
            "hidden_dim": 16, "intermediate_dim": 32}

MODELS: dict[str, Spec] = {
    # keras.applications, one or more per family, at 32 px (Inception-ResNet needs 75, Xception 71). Keras 3 ships
    # no RegNet or ResNetRS (tf_keras does): not here
    "vgg16": Spec("VGG", _app("VGG16")),
    "resnet50": Spec("ResNet", _app("ResNet50")),
    "resnet50_v2": Spec("ResNetV2", _app("ResNet50V2")),
    "inception_resnet_v2": Spec("Inception-ResNet", _app("InceptionResNetV2", 75)),
    "xception": Spec("Xception", _app("Xception", 71)),
    "mobilenet": Spec("MobileNet", _app("MobileNet", alpha=0.25)),
    "mobilenet_v2": Spec("MobileNetV2", _app("MobileNetV2", alpha=0.35)),
    "mobilenet_v3_small": Spec("MobileNetV3", _app("MobileNetV3Small", alpha=0.75, minimalistic=False)),
    "densenet121": Spec("DenseNet", _app("DenseNet121")),
    "nasnet_mobile": Spec("NASNet", _app("NASNetMobile")),
    "efficientnet_b0": Spec("EfficientNet", _app("EfficientNetB0")),
    "efficientnet_v2_b0": Spec("EfficientNetV2", _app("EfficientNetV2B0")),
    "convnext_tiny": Spec("ConvNeXt", _app("ConvNeXtTiny")),
    "conv3d": Spec("3-D CNN", _conv3d_cnn),
    # keras-hub backbones, small configs
    "bert": Spec("BERT", _hub("BertBackbone", **_TEXT, max_sequence_length=SEQ)),
    "albert": Spec("ALBERT", _hub("AlbertBackbone", **_TEXT, embedding_dim=8, num_groups=1,
                                  num_inner_repetitions=1, max_sequence_length=SEQ)),
    "roberta": Spec("RoBERTa", _hub("RobertaBackbone", **_TEXT, max_sequence_length=SEQ)),
    "deberta_v3": Spec("DeBERTaV3", _hub("DebertaV3Backbone", **_TEXT, max_sequence_length=SEQ, bucket_size=4)),
    "electra": Spec("ELECTRA", _hub("ElectraBackbone", vocab_size=VOCAB, num_layers=2, num_heads=2, hidden_dim=16,
                                    embedding_dim=8, intermediate_dim=32, max_sequence_length=SEQ)),
    "xlm_roberta": Spec("XLM-R", _hub("XLMRobertaBackbone", **_TEXT, max_sequence_length=SEQ)),
    "gpt2": Spec("GPT-2", _hub("GPT2Backbone", **_TEXT, max_sequence_length=SEQ)),
    "gpt_neox": Spec("GPT-NeoX", _hub("GPTNeoXBackbone", **_TEXT, max_sequence_length=SEQ)),
    "opt": Spec("OPT", _hub("OPTBackbone", **_TEXT, max_sequence_length=SEQ)),
    "bloom": Spec("BLOOM", _hub("BloomBackbone", **_TEXT)),
    "llama": Spec("Llama", _hub("LlamaBackbone", **_DECODER)),
    "mistral": Spec("Mistral", _hub("MistralBackbone", **_DECODER)),
    "qwen2": Spec("Qwen2", _hub("Qwen2Backbone", **_DECODER)),
    "phi3": Spec("Phi-3", _hub("Phi3Backbone", **_DECODER, max_sequence_length=SEQ)),
    "gemma": Spec("Gemma", _hub("GemmaBackbone", **_DECODER, head_dim=8)),
    "t5": Spec("T5", _hub("T5Backbone", **_TEXT, key_value_dim=8)),
    "whisper": Spec("Whisper", _hub("WhisperBackbone", **_TEXT, num_mels=8, max_encoder_sequence_length=16,
                                    max_decoder_sequence_length=SEQ)),
    "vit": Spec("ViT", _hub("ViTBackbone", image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2,
                            hidden_dim=16, mlp_dim=32)),
    "dinov2": Spec("DINOv2", _hub("DINOV2Backbone", patch_size=8, num_layers=2, hidden_dim=16, num_heads=2,
                                  intermediate_dim=32, image_shape=(32, 32, 3), position_embedding_shape=(32, 32))),
    "esm2": Spec("ESM2", _hub("ESMBackbone", **_TEXT, max_sequence_length=SEQ)),
    "xlnet": Spec("XLNet", _hub("XLNetBackbone", **_TEXT)),
    "roformer_v2": Spec("RoFormerV2", _hub("RoformerV2Backbone", **_TEXT, head_size=8)),
    "distilbert": Spec("DistilBERT", _hub("DistilBertBackbone", **_TEXT, max_sequence_length=SEQ)),
    "falcon": Spec("Falcon", _hub("FalconBackbone", vocabulary_size=VOCAB, num_layers=2, num_attention_heads=2,
                                  hidden_dim=16, intermediate_dim=32)),
    "swin": Spec("Swin", _hub("SwinTransformerBackbone", image_shape=(32, 32, 3), embed_dim=8, depths=(1, 1),
                              num_heads=(1, 2), window_size=4, patch_size=2)),
    "fnet": Spec("FNet", _hub("FNetBackbone", vocabulary_size=VOCAB, num_layers=2, hidden_dim=16,
                              intermediate_dim=32, max_sequence_length=SEQ)),
}


# ----- building and exporting ---------------------------------------------------------------------------------------


def input_specs(model) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (static shape, dtype) of each model input: batch 1, SEQ tokens (Whisper: 16 frames)."""
    specs = {}
    for tensor in model.inputs:
        name = tensor.name.split(":")[0]
        shape = list(tensor.shape)
        shape[0] = 1
        for i in range(1, len(shape)):
            if shape[i] is None:
                shape[i] = 16 if name == "encoder_features" else SEQ
        specs[name] = (tuple(shape), str(tensor.dtype).replace("tf.", ""))
    return specs


def make_inputs(specs: dict, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = {}
    for name, (shape, dtype) in sorted(specs.items()):
        if "mask" in name:
            inputs[name] = np.ones(shape, dtype)
        elif "segment" in name:
            inputs[name] = np.zeros(shape, dtype)
        elif np.issubdtype(np.dtype(dtype), np.integer):
            inputs[name] = rng.integers(0, VOCAB, shape).astype(dtype)
        else:
            inputs[name] = rng.standard_normal(shape).astype(dtype)
    return inputs


def export(name: str, workdir: Path) -> tuple[Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The model as a SavedModel with static input shapes; its inputs and TensorFlow's outputs on them."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(1)
    model = MODELS[name].build()
    specs = input_specs(model)
    signature = [tf.TensorSpec(shape, dtype, name=key) for key, (shape, dtype) in sorted(specs.items())]
    keys = sorted(specs)

    def serve(*args):
        out = model(dict(zip(keys, args)) if len(model.inputs) > 1 else args[0])
        return out if isinstance(out, dict) else {"output_0": out}

    # Keras' own exporter tracks the weights so that TF's converter freezes them (a tf.Module holding the model
    # gave TF's converter a file without them)
    archive = keras.export.ExportArchive()
    archive.track(model)
    serve = archive.add_endpoint("serving_default", serve, input_signature=signature)
    path = workdir / name
    archive.write_out(str(path), verbose=False)
    inputs = make_inputs(specs)
    outputs = {k: v.numpy() for k, v in serve(*[tf.constant(inputs[k]) for k in keys]).items()}
    return path, inputs, outputs


def relative_error(got: dict, want: dict) -> float:
    """Max abs error over the outputs, each relative to its own largest magnitude (1 where that is exactly 0).

    Relative to the output's own scale, not max(1, scale): random-weight outputs can be tiny, and an absolute
    error of 1e-14 on outputs of 1e-12 checks nothing."""
    if set(got) != set(want):
        raise AssertionError(f"outputs {sorted(got)} are not TensorFlow's {sorted(want)}")
    worst = 0.0
    for key, ref in want.items():
        out = np.asarray(got[key], np.float64)
        if out.shape != ref.shape:
            raise AssertionError(f"output {key}: shape {out.shape}, TensorFlow's {ref.shape}")
        if not np.all(np.isfinite(out)):
            return float("nan")  # NaN or inf where TensorFlow computes numbers
        scale = float(np.max(np.abs(ref), initial=0)) or 1.0
        worst = max(worst, float(np.max(np.abs(out - ref), initial=0)) / scale)
    return worst


# ----- the two converters, whole process --------------------------------------------------------------------------

_TF_CONVERT = ("import sys, tensorflow as tf; "
               "open(sys.argv[2], 'wb').write(tf.lite.TFLiteConverter.from_saved_model(sys.argv[1]).convert())")
# what a user does when the default convert asks for Select TF ops: the same with Flex ops allowed
_TF_CONVERT_FLEX = ("import sys, tensorflow as tf; c = tf.lite.TFLiteConverter.from_saved_model(sys.argv[1]); "
                    "c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]; "
                    "open(sys.argv[2], 'wb').write(c.convert())")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=_env(), check=False)
    return time.perf_counter() - start, proc


def irc_command(saved_model: Path, out: Path) -> list[str]:
    irc = Path(sys.executable).with_name("irc")
    return [str(irc) if irc.exists() else "irc", "lower", str(saved_model), "--emit", "tflite", "-o", str(out)]


def tf_command(saved_model: Path, out: Path, flex: bool = False) -> list[str]:
    return [sys.executable, "-c", _TF_CONVERT_FLEX if flex else _TF_CONVERT, str(saved_model), str(out)]


def _failure(stderr: str) -> str:
    """The line of a failed convert's stderr that says why (TF's last line is often a dump of the MLIR module)."""
    lines = stderr.strip().splitlines() or ["?"]
    for key in ("TF Select ops:", "error:"):
        found = [line for line in lines if key in line]
        if found:
            return found[-1][:160]
    return lines[-1][:160]


def measure(name: str, workdir: Path) -> dict:
    """One row of the table."""
    row = {"model": name, "family": MODELS[name].family}
    path, inputs, want = export(name, workdir)
    ours, theirs = workdir / f"{name}.irc.tflite", workdir / f"{name}.tf.tflite"
    row["irc_s"], proc = timed(irc_command(path, ours))
    if proc.returncode != 0:
        row["error"] = _failure(proc.stderr)
    row["tf_s"], tf_proc = timed(tf_command(path, theirs))
    if tf_proc.returncode != 0:
        row["tf_error"] = _failure(tf_proc.stderr)
        if "TF Select ops:" in row["tf_error"]:  # sizes against the Flex file TF writes when asked (timed alone)
            row["tf_s"], tf_proc = timed(tf_command(path, theirs, flex=True))
            row["tf_flex"] = True
            if tf_proc.returncode == 0:
                row["tf_error"] = "TF's file needs Flex (" + row["tf_error"].split("TF Select ops:")[-1].strip() + ")"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.tflite_subprocess import run_tflite

    if ours.exists():
        try:
            row["irc_err"] = relative_error(run_tflite(ours, inputs), want)
        except AssertionError as e:
            row["error"] = str(e)[:160]
    if theirs.exists() and theirs.stat().st_size:
        try:
            if not row.get("tf_flex"):  # TensorFlow's interpreter has no Flex delegate to run the other
                row["tf_err"] = relative_error(run_tflite(theirs, inputs), want)
        except AssertionError as e:
            row["tf_error"] = str(e)[:160]
        if ours.exists():
            row["size_ratio"] = ours.stat().st_size / theirs.stat().st_size
    return row


def markdown(rows: list[dict]) -> str:
    def f(value, fmt):
        return "" if value is None else format(value, fmt)

    header = "| model | family | irc lower (s) | TF convert (s) | time ratio | size ratio | irc error | TF error | note |"
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r["irc_s"] / r["tf_s"] if r.get("tf_s") else None
        note = r.get("error", "") or r.get("tf_error", "")
        lines.append(f"| {r['model']} | {r['family']} | {f(r.get('irc_s'), '.2f')} | {f(r.get('tf_s'), '.2f')} | "
                     f"{f(ratio, '.2f')} | {f(r.get('size_ratio'), '.4f')} | {f(r.get('irc_err'), '.1e')} | "
                     f"{f(r.get('tf_err'), '.1e')} | {note.replace('|', '/')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help=f"some of: {', '.join(MODELS)}")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    names = args.models or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s): {', '.join(unknown)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                rows.append(measure(name, Path(tmp)))
            except Exception as e:  # noqa: BLE001  a model that does not even build or export: its row says why
                rows.append({"model": name, "family": MODELS[name].family, "error": f"{type(e).__name__}: {e}"[:160]})
            print(markdown(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
