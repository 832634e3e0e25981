"""The `e2echat` command."""

import typer

app = typer.Typer(help="e2echat: end-to-end encrypted chat in your terminal.", add_completion=False)


@app.command()
def version() -> None:
    """Print the version."""
    from e2echat_tui import __version__

    typer.echo(__version__)


def main() -> None:
    app()
