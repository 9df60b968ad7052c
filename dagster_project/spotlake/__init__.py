"""spotlake's Dagster code location: partitioned assets whose heavy lifting runs in the
runner (Polars on local workers or an EC2 spot fleet), reported back through Dagster Pipes."""

from spotlake.component import RunnerJobComponent

__all__ = ["RunnerJobComponent"]
