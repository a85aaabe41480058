"""What every stage uses: errors, reading text files, YAML, diagnostics, run folders, progress.

- :mod:`cai.core.errors`: :class:`CaiError`, the one-line error every command prints.
- :mod:`cai.core.files`: reading text inputs (encoding, size limits, CSV rows).
- :mod:`cai.core.yamlutil`: safe YAML with line numbers for error messages.
- :mod:`cai.core.diagnostics`: ``path:line:`` findings shared by lint and loaders.
- :mod:`cai.core.runs`: run folders, atomic writes, ``run.json``.
- :mod:`cai.core.progress`: progress bars on a terminal, plain lines in a log.

Imports: nothing else in ``cai`` (this is the lowest room).
"""
