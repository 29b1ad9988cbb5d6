"""The TFLite backend: TFLite files as dataclasses (``flatbuffer``), their schema (``schema``), and their checks
(``validate``). Nothing here needs TensorFlow."""
