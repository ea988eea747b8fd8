"""Test-wide settings, set at import before any test imports torch: offline hub access, no tokenizer thread
pools, and CPU kernels pinned to their AVX2 code paths, so a test's numbers are the same on every x86 CI
machine (`train.portable_cpu`, gadbench.cli.pin_portable_cpu_numerics)."""

import os

from gadbench.cli import pin_portable_cpu_numerics

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
pin_portable_cpu_numerics()
