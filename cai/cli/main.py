"""Entry point of the `cai` command."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

from cai.core.errors import CaiError

app = typer.Typer(
    rich_markup_mode=None,  # plain click help: option names never cut, [brackets] kept, no <bool>
    name="cai",
    help="Constitutional AI: principles as files, batched critique and revision, AI preference labels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from cai.cli import (evaluate, generate, guard, humans, init, label, mix, models, principles, redteam, route, run, sample, score,
                         train, train_dpo, train_online, train_ppo, train_reward, train_sft)

    if not app.registered_groups:  # main() may run many times in one process (tests, notebooks)
        app.command("init")(init.init)
        app.add_typer(principles.app, name="principles")
        app.command("run")(run.run)
        app.command("generate")(generate.generate)
        app.command("show")(generate.show)
        app.command("sample")(sample.sample)
        app.command("label")(label.label)
        app.command("route")(route.route)
        app.add_typer(humans.app, name="humans")
        app.command("mix")(mix.mix)
        app.add_typer(evaluate.app, name="eval")
        app.command("redteam")(redteam.redteam)
        app.add_typer(guard.app, name="guard")
        train.app.command("reward")(train_reward.reward)
        train.app.command("sft")(train_sft.sft)
        train.app.command("dpo")(train_dpo.dpo)
        app.command("score")(score.score)
        train.app.command("ppo")(train_ppo.ppo)
        train.app.command("grpo")(train_online.grpo)
        train.app.command("rloo")(train_online.rloo)
        app.add_typer(train.app, name="train")
        app.add_typer(models.app, name="models")


def _version(value: bool) -> None:
    if value:
        from cai import __version__

        typer.echo(f"cai {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Constitutional AI: principles as files, batched critique and revision, AI preference labels."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line on stderr and exit with the error's code."""
    import os

    # The datasets library's own bars ("Generating train split", "Saving the dataset", ...)
    # would spill into every command's output; cai shows its own progress.
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    # OpenMP threads that spin while waiting turn a busy CPU machine (other jobs, vLLM's engine
    # process) into a 5-10x slowdown of torch on CPU; sleeping waits cost little when idle.
    # Read once when torch loads, so it must be set before anything imports torch.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not sys.stderr.isatty():  # a log file: no carriage-return bars (model loading, GGUF reading)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "datasets" in sys.modules:  # already imported (tests, notebooks): the variable is read once
        sys.modules["datasets"].disable_progress_bars()
    _register()
    from cai.core.renames import reset_notes

    reset_notes()  # notes ("x is now y") are said once per command, not once per process
    from cai.cli.renamed import _command_path, options_of, rewrite

    command = typer.main.get_command(app)
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = rewrite(argv, known=options_of(command, _command_path(argv)))
    try:
        command.main(args=argv, prog_name="cai", standalone_mode=True)
    except CaiError as exc:
        typer.echo(f"{exc.kind}: {exc.format()}", err=True)
        return exc.exit_code
    except OSError as exc:  # an unusable path the checks did not catch: a file where a folder goes, ...
        where = f": {exc.filename}" if exc.filename else ""
        typer.echo(f"error: {exc.strerror or exc}{where}", err=True)
        return 2
    except ValidationError as exc:  # settings validated outside validate_config
        err = exc.errors(include_url=False)[0]
        typer.echo(f"error: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}", err=True)
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
