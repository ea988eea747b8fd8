"""Test-wide settings, set at import before any test imports torch: offline hub access, no tokenizer thread
pools, CPU kernels pinned to their AVX2 code paths, so a test's numbers are the same on every x86 CI machine
(`train.portable_cpu`, gadbench.runtime.pin_portable_cpu_numerics), and the Hypothesis profile of
tests/test_fuzz.py: each fuzz test runs its bounded number of cases from a fixed seed (derandomised), so
every run checks the same cases in seconds and writes no example database; GADBENCH_FUZZ_SCALE=20 runs 20x
the cases with fresh randomness, to search further. The world students are built once into the checkout's
results/cache and shared by every test, its subprocesses included ($GADBENCH_CACHE; a run's own cache is
<out>/cache, which tests/test_cli.py checks with $GADBENCH_CACHE unset)."""

import os
from pathlib import Path

from hypothesis import settings

from gadbench.runtime import pin_portable_cpu_numerics

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("GADBENCH_CACHE", str(Path(__file__).resolve().parents[1] / "results" / "cache"))
pin_portable_cpu_numerics()

FUZZ_SCALE = int(os.environ.get("GADBENCH_FUZZ_SCALE", "1"))
settings.register_profile("gadbench", derandomize=FUZZ_SCALE == 1, deadline=None, database=None, print_blob=True)
settings.load_profile("gadbench")
