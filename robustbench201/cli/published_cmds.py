"""``rb201 download`` and ``rb201 publish``: published dataset shards (no torch import)."""

from __future__ import annotations

import click

from . import run_library


@click.command("download")
@click.argument("name", required=False)
@click.option("--dest", type=click.Path(file_okay=False), help="Target folder (default: cache folder / NAME).")
@click.option(
    "--registry", type=click.Path(dir_okay=False), help="Registry JSON (default: $RB201_REGISTRY or shipped)."
)
@click.option("--base-url", help="Mirror holding the dataset's layout, http(s):// or file:// (also $RB201_MIRROR).")
@click.option("--list", "list_only", is_flag=True, help="List the datasets of the registry and exit.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def download(
    name: str | None, dest: str | None, registry: str | None, base_url: str | None, list_only: bool, quiet: bool
) -> None:
    """Download dataset NAME's shards, verify size and sha256, and print the folder.

    Interrupted downloads resume; files already verified are not fetched again. The folder is readable with
    rb201.Dataset(path) and 'rb201 query --source PATH'.

    \b
    Examples:
      rb201 download --list
      rb201 download jung2023-original --dest ./jung-original && rb201 import-jung ./jung-original --out ./jung
      rb201 download nb201-robustness-v1 --registry registry.json --dest ./nb201rob
    """
    from ..published import cache_dir, load_registry
    from ..published import download as do_download

    if list_only or name is None:
        entries = run_library(load_registry, registry)
        if not entries:
            click.echo("the registry lists no datasets")
        for entry in entries.values():
            size = sum(f.size for f in entry.files)
            click.echo(f"{entry.name:<32} {len(entry.files):>4} files {size / 1e6:>10.1f} MB  {entry.description}")
        if name is None:
            click.echo(f"cache folder: {cache_dir()}")
        return
    path = run_library(do_download, name, dest, registry=registry, base_url=base_url, progressbar=not quiet)
    click.echo(str(path))
    if (path / "meta.json").is_file() and not (path / "manifest.json").is_file():
        click.echo(
            f"the published layout of Jung et al.: turn it into a dataset with 'rb201 import-jung {path} --out DIR'"
        )


@click.command("publish")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--base-url", required=True, help="URL under which the folder's files will be served.")
@click.option("--name", help="Dataset name in the registry (default: the folder name).")
@click.option("--registry", type=click.Path(dir_okay=False), help="Registry file to write or extend.")
@click.option("--description", default="", help="One line describing the dataset.")
def publish(dataset_dir: str, base_url: str, name: str | None, registry: str | None, description: str) -> None:
    """Write the registry (name, URL, sha256, size of every file) for a built dataset folder.

    \b
    Example:
      rb201 publish ./dataset --base-url https://example.org/rb201/v1/ --registry registry.json
    """
    from ..published import publish as do_publish

    out = run_library(do_publish, dataset_dir, base_url, name=name, registry=registry, description=description)
    click.echo(str(out))
