"""The `omr` command line: a thin click layer over the pipeline, scoring and store.

Exit codes: 0 success, 1 when any page ended as ``error``, 2 usage errors.
"""

from __future__ import annotations

import sys

import click

from omr.errors import OmrError


@click.group()
@click.version_option(package_name="omr-karta")
def cli() -> None:
    """Read and score LEK/LDEK answer cards (karta testowa)."""


def main() -> None:
    """Console-script entry point: prints `OmrError`s once, as ``error: Kind: message``."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except OmrError as err:
        click.echo(f"error: {type(err).__name__}: {err}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
