"""The ground floor: what every layer may use and what uses none of them.

``core.paths``    the repository root, the runs folder ($RBM_BENCH_RUNS), the dataset cache ($RBM_BENCH_CACHE)
``core.files``    complete-or-absent writes of every file the project writes, and the one sha256 of a file
``core.errors``   the error types a command turns into one line and exit code 2
``core.process``  the one launcher of child processes, with the one environment they run in
``core.typed``    dataclasses to JSON and back, every value checked against its declared type and range

The layers above stack ``datasets`` -> ``impls`` -> ``eval`` -> ``reports``; each imports only from the
layers below it and from ``core``, and ``core`` imports none of them
(``tests/contracts/test_layers.py`` reads the imports).
"""
