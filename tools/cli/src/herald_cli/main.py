"""herald: Herald's REST API from the command line, for operators and CI scripts.

    herald clients import clients.csv --on-duplicate skip
    herald mailings create --ends-at +2h --text "Hello" --tag vip
    herald mailings watch 42 --timeout 600
    herald stats --json

Exit codes: 0 ok, 1 the API refused the request, 2 usage error, 3 not found,
4 the API cannot be reached or failed (5xx), 5 `mailings watch` timed out.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from herald_cli import clients, mailings, output
from herald_cli.api import DEFAULT_API_URL, Api, api_of
from herald_cli.errors import CliError


class HeraldGroup(TyperGroup):
    """Every ``CliError`` raised under ``herald`` ends here: its lines on stderr, its exit
    code, never a traceback."""

    # Typer vendors click privately (typer._click): its Context type has no public name.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as error:
            output.report_error(error)
            raise typer.Exit(error.exit_code) from None


app = typer.Typer(
    cls=HeraldGroup,
    help=__doc__.split("\n\n")[0] if __doc__ else None,
    epilog="Exit codes: 0 ok, 1 refused by the API, 2 usage error, 3 not found, "
    "4 API unreachable or failing, 5 watch timed out. See docs/cli.md.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(clients.app, name="clients", no_args_is_help=True)
app.add_typer(mailings.app, name="mailings", no_args_is_help=True)


@app.callback()
def connect(
    ctx: typer.Context,
    api_url: Annotated[
        str, typer.Option(envvar="HERALD_API_URL", help="Where the API is.")
    ] = DEFAULT_API_URL,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="HERALD_API_TOKEN",
            help="Bearer token; unset, .herald/api-token (written by `make run`) is used.",
            show_default=False,
        ),
    ] = None,
) -> None:
    api = Api(api_url, token)
    ctx.obj = api
    ctx.call_on_close(api.close)


@app.command()
def stats(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every mailing with its messages by status, and the totals."""
    result = api_of(ctx).call("GET", "/mailings/stats")
    if as_json:
        output.print_json(result)
    else:
        output.print_stats(result)


def run() -> None:
    app(prog_name="herald")
