"""The ``.tflite`` format: its schema (``schema.py``), the flatbuffer reader and writer (``flatbuffer.py``), the
checks a file irc did not write passes before anything reads it (``validate.py``) and the op names irc's ops take
in TFLite (``opnames.py``). The reader (``irc/frontends/tflite.py``) and the writer (``irc/backends/tflite/``)
both use this package; it imports neither."""
