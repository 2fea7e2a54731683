"""Framework glue, once per framework: device, precision policy, version, GPU probe, peak memory, operator trace.

Each module ``impls/backends/<framework>.py`` offers the same five functions — ``version()``,
``device_unavailable(device)``, ``configure(precision)``, ``settings()``, ``peak_device_mb(device)`` — and
imports its framework; a model file (``impls/<model>/<framework>.py``) reads them and repeats none of it. A
framework with its own profiler also offers ``trace_operators(run)`` (`impls.common.Implementation.trace_operators`).
"""
