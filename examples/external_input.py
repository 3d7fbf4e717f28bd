"""External input (seed page: "External Input Integration").

The seed page queries an HTTP API; this example reads the same JSON configuration from a
local file instead (CONFIG_FILE, default: external_config.json beside this script), so it
runs without a network.

    python examples/external_input.py
"""

import json
import os
from pathlib import Path

from branchwork import pipeline, step

CONFIG_FILE = os.environ.get("CONFIG_FILE", str(Path(__file__).with_name("external_config.json")))


@step
def check_external_api() -> dict:
    """Query external configuration (a local file standing in for the API)."""
    return json.loads(Path(CONFIG_FILE).read_text())


@step
def process_with_gpu(data: dict) -> dict:
    """GPU-accelerated processing."""
    return {"method": "gpu", "result": data}


@step
def process_with_cpu(data: dict) -> dict:
    """CPU-only processing."""
    return {"method": "cpu", "result": data}


@pipeline
def external_config_pipeline():
    """Use external configuration to determine execution."""
    config = check_external_api()

    if config.get("gpu_available"):
        result = process_with_gpu(config)
    else:
        result = process_with_cpu(config)

    return result


if __name__ == "__main__":
    print(external_config_pipeline())
