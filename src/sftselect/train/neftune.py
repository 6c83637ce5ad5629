"""NEFTune noise on the input embeddings, scaled for a chosen sequence length.

NEFTune adds uniform noise in ``[-m, m]`` to every input embedding while
training, with ``m = alpha / sqrt(L * d)`` (``d`` the embedding width).
transformers' built-in version (``TrainingArguments(neftune_noise_alpha=...)``,
which the paper's FastChat script used) takes ``L`` as the batch's padded
width. The paper's script pads every example to ``model_max_length`` (2048),
so its noise was ``alpha / sqrt(2048 * d)`` for every batch; with batches
padded to their longest example, as :func:`sftselect.train.train` does, ``L``
is far smaller and the noise larger (1.2-2.6x, 2.15x on average, on the
1k-longest records at micro-batch 2).

:func:`neftune` adds the same noise as transformers with ``L`` fixed to
``length``, so a dynamically padded or packed run gets the paper's noise
(``TrainConfig(neftune_length="max_length")``, the ``long_is_more`` preset),
or, with ``length=None``, transformers' own scaling by the batch width.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

__all__ = ["neftune", "noise_bound"]


def noise_bound(alpha: float, length: int, width: int) -> float:
    """The largest noise NEFTune adds to one embedding value: ``alpha / sqrt(length * width)``."""
    return alpha / math.sqrt(length * width)


@contextlib.contextmanager
def neftune(model: Any, alpha: float, length: int | None) -> Iterator[None]:
    """Add NEFTune noise to ``model``'s input embeddings while it is training.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        The model; the hook goes on ``model.get_input_embeddings()`` and is
        removed when the block ends (so the saved model carries none).
    alpha : float
        NEFTune's noise alpha.
    length : int or None
        The sequence length the noise is scaled for; None: each batch's
        padded width (transformers' NEFTune).
    """
    embeddings = model.get_input_embeddings()

    def add_noise(module: Any, args: Any, output: Any) -> Any:
        if not module.training:
            return output
        width = output.size(1) if length is None else length
        bound = noise_bound(alpha, width, output.size(2))
        return output + output.new_zeros(output.shape).uniform_(-bound, bound)

    handle = embeddings.register_forward_hook(add_noise)
    try:
        yield
    finally:
        handle.remove()
