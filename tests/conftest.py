"""Test-wide settings: offline hub access and no tokenizer thread pools (set at import, before any test runs)."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
