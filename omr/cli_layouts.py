"""``omr layouts``: the card layouts shipped with omr, by name."""

from __future__ import annotations

import click


@click.command()
def layouts() -> None:
    """List the shipped card layouts: name, questions per card, options, parts, title.

    Use a name with --layout (omr scan/render/synth/inspect/calibrate --layout cem-100);
    a layout JSON file of the same form works there too.
    """
    from omr.layout import DEFAULT_LAYOUT_NAME, load_layout, shipped_layouts

    click.echo(f"{'name':<14}{'questions':>10}{'options':>9}{'parts':>7}  title")
    for name in shipped_layouts():
        layout = load_layout(name)
        default = "  (default)" if name == DEFAULT_LAYOUT_NAME else ""
        total = f" (test of {layout.total_questions})" if layout.parts is not None else ""
        click.echo(f"{name:<14}{layout.questions:>10}{layout.options:>9}{layout.part_count:>7}  "
                   f"{layout.title}{total}{default}")
