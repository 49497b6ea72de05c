"""Task samplers (which task's data the next batch comes from). One file per sampler.

``Trainer(sampler=...)`` draws each epoch's batches from the sampler, logs its
``epoch_summary()`` (task probabilities and realised batch counts) in the epoch record under
``"sampling"``, and calls ``on_epoch_end(epoch, record)`` after evaluation, from which adaptive
samplers (``dynamic_temperature``) update.
"""

from __future__ import annotations

from mtlkit.data.samplers._base import TaskSampler, epoch_steps, size_probabilities
from mtlkit.data.samplers.dynamic_temperature import DynamicTemperature
from mtlkit.data.samplers.proportional import Proportional
from mtlkit.data.samplers.temperature import Temperature
from mtlkit.data.samplers.uniform import Uniform

__all__ = ["DynamicTemperature", "Proportional", "TaskSampler", "Temperature", "Uniform", "epoch_steps",
           "size_probabilities"]
