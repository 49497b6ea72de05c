"""Task samplers (which task's data the next batch comes from). One file per sampler."""

__all__: list[str] = []
