"""The ``cai`` command: each module parses one command's flags and calls one library function.

Imports: any room. Nothing outside :mod:`cai.cli` imports it.
"""
