"""spotlake's example code location: the event pipeline, whose heavy lifting runs in the runner
(Polars on local workers or an EC2 spot fleet), reported back through dagster-spotlake."""
