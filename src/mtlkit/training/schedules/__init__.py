"""Task schedules (which tasks are optimised at a step). One file per schedule."""

__all__: list[str] = []
