"""The names the layer options choose from, without importing torch (the command line's
options and ``--help`` are generated from them; :mod:`polytask.models.layers` maps each
activation name to its torch module)."""

ACTIVATION_NAMES: tuple[str, ...] = ("relu", "gelu", "tanh", "sigmoid", "silu", "elu", "leaky_relu")
NORMS: tuple[str, ...] = ("none", "batch", "layer")
#: The built-in architectures (the registry, :mod:`polytask.models.registry`, holds the classes).
BUILTIN_ARCHITECTURES: tuple[str, ...] = ("hps", "stl", "soft", "cross_stitch", "mmoe", "cgc", "ple", "mtan", "dselect_k")
