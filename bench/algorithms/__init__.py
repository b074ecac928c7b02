"""Algorithm registry: one small adapter module per family, registered by the name used in TOML and results.

`bench.algorithms.registry` holds the table; `ALGORITHM_MODULES` lists the modules that register themselves.
Only this package imports `trl`, and only inside the functions that train, so validation and `bench list`
stay fast and torch-free.
"""

from bench.algorithms.registry import Algorithm, TrainParams, all_algorithms, get_algorithm, register

__all__ = ["Algorithm", "TrainParams", "all_algorithms", "get_algorithm", "register"]
