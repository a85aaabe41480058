"""Principles and constitutions: the files people author, and the tools around them.

- :mod:`cai.principles.principle`: the :class:`Principle` type and its Markdown + front-matter file.
- :mod:`cai.principles.library`: a folder of principle files, looked up by id.
- :mod:`cai.principles.constitution`: which principles, how they are sampled, templates, a content hash.
- :mod:`cai.principles.templates`: prompt templates rendered in Jinja's sandbox.
- :mod:`cai.principles.lint`, :mod:`cai.principles.importers`, :mod:`cai.principles.scaffold`:
  ``cai principles lint``, ``import`` and ``new``.

Imports: :mod:`cai.core` only.
"""
