"""Torch helpers for batched ``model.generate`` calls, shared by
:class:`~sftselect.backends.transformers_chat.TransformersChatBackend` and
:func:`sftselect.generate.generate`: a left-padded batch of prompts with its
attention mask, and seeded sampling that forks torch's global random state and
restores it afterwards. torch is never imported here; callers pass the module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["left_pad", "seeded"]


def left_pad(torch: Any, prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """Token ids of ``prompts`` as one left-padded batch, and its attention mask.

    Parameters
    ----------
    torch : module
        The ``torch`` module.
    prompts : sequence of sequences of int
        The token ids of each prompt (at least one prompt, none empty).
    pad_id : int
        The id that fills the left of the shorter prompts.

    Returns
    -------
    input_ids, attention_mask : torch.Tensor
        Two ``long`` tensors of shape ``(len(prompts), longest prompt)`` on the
        CPU; the mask is 1 over each prompt's own tokens and 0 over its padding.
    """
    width = max(len(ids) for ids in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention[row, width - len(ids) :] = 1
    return input_ids, attention


@contextlib.contextmanager
def seeded(torch: Any, random_state: int | None, device: Any = None) -> Iterator[None]:
    """Run the block under ``torch.manual_seed(random_state)``, then restore torch's global RNG.

    The CPU generator is forked (saved, then restored on exit), and with it the
    generator of the device that generates: the CUDA device ``device`` (its
    index, else the current CUDA device) or the MPS device.

    Parameters
    ----------
    torch : module
        The ``torch`` module.
    random_state : int or None
        None runs the block as it is (nothing seeded, nothing forked).
    device : torch.device or None
        The device that generates; None stands for torch's default device:
        the current CUDA device when CUDA is available, else the CPU.

    Yields
    ------
    None
    """
    if random_state is None:
        yield
        return
    if device is None:
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        kind = getattr(device, "type", "cpu")
    if kind == "cuda":
        index = getattr(device, "index", None)
        devices = [torch.cuda.current_device() if index is None else index]
        fork = torch.random.fork_rng(devices=devices, device_type="cuda")
    elif kind == "mps":
        fork = torch.random.fork_rng(devices=[0], device_type="mps")
    else:
        fork = torch.random.fork_rng(devices=[])
    with fork:
        torch.manual_seed(int(random_state))
        yield
