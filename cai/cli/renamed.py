"""Old spellings of options, still accepted: each is rewritten to today's name with a note.

One concept has one name across every command, config file and recipe (issue 23): a CLI option is
the kebab-case of the config field it sets (``--principles-dir`` sets ``principles_dir``). The
options renamed for that keep working: :func:`rewrite` replaces them in ``argv`` before the command
parses it and says so once on stderr.
"""

from __future__ import annotations

import sys

# command path (a prefix of argv, () for every command) -> {old option: new option}
OLD_OPTIONS: dict[tuple[str, ...], dict[str, str]] = {
    ("humans", "import"): {"--prompt-col": "--prompt-column", "--chosen-col": "--chosen-column",
                           "--rejected-col": "--rejected-column", "--label-col": "--label-column"},
    ("principles",): {"--dir": "--principles-dir"},
    ("train", "reward"): {"--test-fraction": "--test-size"},
    ("train", "sft"): {"--full-loss": "--no-completion-only"},
    ("principles", "propose"): {"--held-out": "--test-size"},
    ("principles", "test"): {"--question-first": "--no-pair-first"},
    ("eval", "agreement"): {"--one-order": "--no-both-orders"},
    ("sample",): {"--keep-truncated": "--no-drop-truncated"},
    ("label",): {"--one-order": "--no-both-orders"},
    ("redteam",): {"--style": "--styles"},
    (): {"--principles": "--principles-dir"},
}


def _command_path(argv: list[str]) -> tuple[str, ...]:
    path = []
    for arg in argv:
        if arg.startswith("-"):
            break
        path.append(arg)
    return tuple(path)


def options_of(command, path: tuple[str, ...]) -> set[str]:
    """The long options of the (click) command at ``path`` under ``command``."""
    for name in path:
        sub = getattr(command, "commands", {}).get(name)
        if sub is None:
            break
        command = sub
    return {o for p in getattr(command, "params", []) for o in p.opts + p.secondary_opts}


def rewrite(argv: list[str], echo=None, known: set[str] | None = None) -> list[str]:
    """``argv`` with old option spellings replaced by today's (``--old=value`` too); a note per
    renamed option goes to ``echo`` (stderr by default). An old spelling that is a real option of
    the command (``known``) is left alone."""
    path = _command_path(argv)
    table: dict[str, str] = {}
    for prefix, renames in OLD_OPTIONS.items():
        if path[:len(prefix)] == prefix:
            table.update({old: new for old, new in renames.items() if old not in table and old not in (known or ())})
    out, said = [], set()
    for arg in argv:
        if arg == "--":
            out.extend(argv[len(out):])
            break
        name, eq, value = arg.partition("=")
        if arg.startswith("--") and name in table:
            new = table[name]
            if name not in said:
                said.add(name)
                (echo or (lambda text: print(text, file=sys.stderr)))(
                    f"note: {name} is now {new} (the old spelling still works)")
            arg = new + eq + value
        out.append(arg)
    return out
