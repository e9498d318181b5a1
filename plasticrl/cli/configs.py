"""``plasticrl configs``: the configs that ship with the package (list them, print one)."""
from __future__ import annotations

import typer

from plasticrl.cli.common import app, console, fail
from plasticrl.errors import PlasticRLError

configs_app = typer.Typer(help="The bundled configs: `plasticrl configs` lists them, `plasticrl configs show NAME` "
                          "prints one. Any command that takes a CONFIG.yaml also takes a bundled NAME.",
                          no_args_is_help=False, add_completion=False, pretty_exceptions_enable=False)
app.add_typer(configs_app, name="configs")


@configs_app.callback(invoke_without_command=True)
def configs_list(ctx: typer.Context) -> None:
    """List the bundled configs (experiment specs under experiments/)."""
    if ctx.invoked_subcommand is not None:
        return
    from plasticrl.config.bundled import configs_dir, list_configs

    names = list_configs()
    if not names:
        fail(f"no bundled configs found in {str(configs_dir())!r}; is the package installed completely?")
    console.print(f"bundled configs ({configs_dir()}):", soft_wrap=True, highlight=False)
    for name in names:
        console.print(f"  {name}", highlight=False)
    console.print("use: plasticrl train NAME [key=value ...] | plasticrl experiment experiments/NAME | "
                  "plasticrl configs show NAME", highlight=False, soft_wrap=True)


@configs_app.command("show")
def configs_show(name: str = typer.Argument(..., help="A bundled config name, e.g. halfcheetah/bcm_modulated.")
                 ) -> None:
    """Print one bundled config (copy it to a file to edit it: plasticrl configs show NAME > my.yaml)."""
    from plasticrl.config.bundled import bundled_path

    try:
        path = bundled_path(name)
    except PlasticRLError as exc:
        fail(str(exc))
    # plain print: the YAML goes to stdout unchanged (no markup, no wrapping), ready to redirect
    print(path.read_text(), end="")
