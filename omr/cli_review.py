"""``omr review``: the examiner review station over a results store (`omr.review.app`)."""

from __future__ import annotations

import ipaddress
import socket

import click


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None)
            )
        except OSError:
            return False


@click.command()
@click.option("--db", "db_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Results store written by 'omr scan --db' (the scan may still be running).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free one).")
@click.option("--token", help="Secret every request must carry (required off loopback); the printed URL has it.")
@click.option("--double-entry", is_flag=True,
              help="Each card resolved blind by two different examiners; disagreements go to a supervisor.")
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False),
              help="Answer key for the provisional scores.  [default: the key the store was scored with]")
@click.option("--layout", "layout_path", metavar="NAME|PATH",
              help="Card layout: a shipped one by name (cem-100...) or a layout JSON file.  "
                   "[default: the store's own]")
@click.option("--threads", type=click.IntRange(1, 32), default=6, show_default=True,
              help="Server threads (a card screen asks for its image and crops at once).")
def review(db_path: str, host: str, port: int, token: str | None, double_entry: bool, key_path: str | None,
           layout_path: str | None, threads: int) -> None:
    """Serve the examiner review station for a results store (a local web app).

    Examiners log in with their name, resolve every doubt of the review cards by
    keyboard and finalise them; each decision is an audited event in the store (the
    readings are never changed), and 'omr export' then writes the verified results.
    """
    from omr.layout import load_layout, shipped_layouts
    from omr.review.app import create_app, serve
    from omr.review.service import ReviewService
    from scoring import load_key

    if not is_loopback(host) and not token:
        raise click.UsageError(
            f"--host {host} is reachable from other machines: give --token SECRET too "
            "(every request must then carry it)"
        )
    if token is not None and len(token) < 8:
        raise click.BadParameter("use at least 8 characters", param_hint="--token")
    if layout_path is None:  # the layout the store was made for, when it is a shipped one
        from omr.store import open_store

        with open_store(db_path) as store:
            recorded = store.layout_name
        layout_path = recorded if recorded in shipped_layouts() else None
    layout = load_layout(layout_path)
    service = ReviewService(
        db_path, layout, key=load_key(key_path, version_labels=layout.version.labels) if key_path else None, double_entry=double_entry
    )
    stored = service.store().meta("layout")
    if stored and stored != layout.name:
        raise click.UsageError(f"{db_path} holds cards of layout {stored!r}; give --layout for it")
    server = serve(create_app(service, token=token), host, port, threads=threads)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{server.effective_port}/" + (f"?token={token}" if token else "")
    click.echo(f"omr review: {db_path} at {url}  (Ctrl-C stops)")
    try:
        server.run()
    except KeyboardInterrupt:
        click.echo("stopped; every decision is stored")
    finally:
        server.close()
