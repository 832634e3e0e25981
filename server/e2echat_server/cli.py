"""The `e2echat-server` command."""

import typer

app = typer.Typer(help="Run the e2echat relay.", no_args_is_help=False, add_completion=False)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8765, help="TCP port for WebSocket and HTTP."),
) -> None:
    """Run the relay."""
    raise SystemExit("the relay is not built yet")


def main() -> None:
    app()
