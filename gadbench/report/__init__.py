"""Reports from stored results only: tables (Markdown, LaTeX, CSV) and figures (PNG, SVG) in REPORT.md and a
self-contained report.html. Imports no training code and no torch."""

from gadbench.report.build import BuiltReport, build_report

__all__ = ["BuiltReport", "build_report"]
