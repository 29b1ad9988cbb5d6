"""Frontends: TensorFlow models (SavedModel, Keras, GraphDef, tf.function) and .tflite files into irc's IR.

Reading a TF model happens in two steps: a reader produces a neutral, flat TF graph (``tfgraph.TFGraph``) either
without TensorFlow (``savedmodel_reader``) or through it (``tf_loader``); then ``lowering`` turns TF ops into irc
ops, one lowering per TF op type.
"""
