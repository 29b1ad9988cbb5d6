"""Tools for looking inside models: ``diff`` (semantic graph diff), ``check`` (what a target runs, per Keras
layer), ``viz`` (pictures of the graph) and ``stats`` (op histogram, parameters, MACs). The ``irc diff``,
``irc check``, ``irc viz`` and ``irc stats`` commands are thin wrappers over these modules."""
