"""The machine a figure came from: its CPU model, for benchmarks and `--plan` (speed is only comparable on one CPU)."""

import subprocess


def cpu_model() -> str:
    """lscpu's "Model name" ("unknown" where lscpu is missing or silent)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no lscpu)"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
                "unknown")
