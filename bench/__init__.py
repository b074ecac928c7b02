"""daa-bench: Direct Alignment Algorithms vs PPO under equal compute.

The notebook API (`bench.api`): `bench.run_suite(path, **overrides)` and `bench.load_results(dir)`; imported on
first use so `import bench.cli` stays light.
"""

__all__ = ["load_results", "run_suite"]


def __getattr__(name):
    if name in __all__:
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
