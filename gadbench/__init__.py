"""gadbench: the reference suite for black-box on-policy distillation of LLMs (GAD, SeqKD and ablations)."""


class GadbenchError(Exception):
    """A problem gadbench reports on purpose, in one sentence naming what is wrong and how to fix it;
    `gadbench` prints it as one line and exits with status 2."""
