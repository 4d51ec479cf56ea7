"""glibc's thresholds, set when a model is first placed on the CPU: a large freed block stays
with the process for the next step instead of being unmapped and faulted in again."""

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only"
)

SCRIPT = """
import json, os
import numpy as np
import torch
import hubel
from hubel import layers as L
from hubel.train.allocator import keep_freed_blocks

model = hubel.Sequential([L.Dense(2, input_shape=(3,))])
model.predict(np.zeros((4, 3), np.float32))  # the first placement on the CPU sets the thresholds
page = os.sysconf("SC_PAGE_SIZE")
def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * page
before = resident()
block = torch.ones((64 << 20) // 4)  # 64 MiB, every page touched: above glibc's largest default threshold
del block
print(json.dumps({"set": keep_freed_blocks(), "kept_mib": (resident() - before) / 2**20}))
"""


def run(extra_env: dict[str, str]) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env={**env, **extra_env}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_a_freed_large_block_stays_with_the_process_after_a_model_ran_on_the_cpu():
    outcome = run({})
    assert outcome["set"] is True
    assert outcome["kept_mib"] > 60


def test_a_process_whose_user_chose_the_allocators_settings_is_left_alone():
    outcome = run({"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert outcome["set"] is False
    assert outcome["kept_mib"] < 8  # glibc's own behaviour: the block went back to the kernel
