"""`saga schema [--asyncapi | --openapi] [--out FILE]`: the published contracts.

The committed copies in docs/ are this command's output; tests/unit/test_published_contracts.py
fails when they drift from the models. The output is stable (sorted keys, fixed examples), so
a diff of docs/ is a change of contract.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from shared_events.envelope import Event
from shared_events.topics import EVENT_TOPICS

__all__ = ["asyncapi_json", "consumers", "openapi_json", "render", "schema"]


def consumers() -> dict[str, frozenset[type[Event]]]:
    """Each service's consumed events, from its spec: the one place that says so."""
    from saga_cli.services import spec_for

    return {name: spec_for(name).consumes for name in EVENT_TOPICS}


def render(document: dict[str, Any]) -> str:
    # Sorted keys and a fixed layout: the same models always give the same bytes.
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def asyncapi_json() -> str:
    from shared_events.asyncapi import asyncapi_document

    return render(asyncapi_document(consumers()))


def openapi_json() -> str:
    from order_svc.api.openapi import openapi_document

    return render(openapi_document())


@click.command()
@click.option(
    "--asyncapi",
    "kind",
    flag_value="asyncapi",
    default=True,
    help="The AsyncAPI 3.0 document of the events (the default).",
)
@click.option(
    "--openapi",
    "kind",
    flag_value="openapi",
    help="The OpenAPI 3.1 document of the checkout HTTP API.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to FILE instead of stdout (e.g. docs/asyncapi.json).",
)
def schema(kind: str, out: Path | None) -> None:
    """Print a published contract as JSON, generated from the pydantic models.

    Reads no environment variable and needs no running service.
    Regenerate the committed copies with `saga schema --out docs/asyncapi.json` and
    `saga schema --openapi --out docs/openapi.json`.
    """
    text = openapi_json() if kind == "openapi" else asyncapi_json()
    if out is None:
        click.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}", err=True)
