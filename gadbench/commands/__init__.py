"""The `gadbench` subcommands, one module each: `add_parser(subparsers)` registers it, and its function
imports what it needs when it runs (building the parser imports neither torch nor the API client).

    run       train, evaluate and report a suite          suites   list suites, explain settings
    report    rebuild reports from stored results         eval     evaluate a stored checkpoint again
    teacher   ask a black-box teacher (collect)           serve    a local model behind an OpenAI-compatible API
    bench     time GAD steps on a random-initialised student
    doctor    check torch, CUDA, vLLM, a judge endpoint

`devicecheck` is not a subcommand: scripts/gpu_check.sh runs its two halves around a `gadbench run`.
"""

from gadbench.commands import bench, doctor, eval, report, run, serve, suites, teacher

COMMANDS = (run, suites, doctor, report, teacher, serve, eval, bench)
