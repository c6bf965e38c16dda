"""Device choice and a printable description of the environment."""

from __future__ import annotations

import platform

import torch


def best_device() -> torch.device:
    """CUDA when a GPU is visible, otherwise the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def environment_report() -> dict[str, str]:
    """Versions of the main libraries and the device in use, for a notebook's setup cell."""
    import matplotlib
    import numpy
    import pandas
    import transformers

    import tailrec

    device = best_device()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{torch.get_num_threads()} threads"
    return {
        "python": platform.python_version(),
        "tailrec": tailrec.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "matplotlib": matplotlib.__version__,
        "device": f"{device.type} ({name})",
    }
