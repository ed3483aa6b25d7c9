"""``rb201 search dsrna``: DSRNA differentiable robust search on a small supernet (torch imported on use only)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..vocab import CERTIFIED_METHODS
from . import run_library


@click.command("dsrna")
@click.option("--dataset", default="mnist5k", show_default=True, help="mnist5k, cifar10, cifar100, ImageNet16-120.")
@click.option(
    "--metric",
    type=click.Choice(["jacobian", "certified", "combined", "none"]),
    default="jacobian",
    show_default=True,
    help="Robustness regulariser R (none: plain DARTS).",
)
@click.option("--epochs", type=int, default=5, show_default=True)
@click.option("--channels", type=int, default=8, show_default=True, help="Supernet width C of the first stage.")
@click.option("--cells", "n_cells", type=int, default=1, show_default=True, help="Cells per stage N.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--n-train", type=int, default=1000, show_default=True, help="Training images, split half/half.")
@click.option("--gamma", type=float, default=0.01, show_default=True, help="Weight of R in L_val - gamma R.")
@click.option("--eps", type=float, default=2.0, show_default=True, help="L-inf radius in pixel units of 1/255.")
@click.option("--q", type=float, default=1.0, show_default=True, help="Norm of the Jacobian rows (1: dual of L-inf).")
@click.option("--bound", type=click.Choice(CERTIFIED_METHODS), default="ibp", show_default=True)
@click.option("--reg-batch", type=int, default=32, show_default=True, help="Validation images per step in R.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--second-order", is_flag=True, help="DARTS unrolled (second-order) alpha gradient.")
@click.option("--exclude-none", is_flag=True, help="Derive without 'none' (original DARTS; NB201 keeps it).")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for checkpoint, result JSON and PNG.")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --out.")
@click.option("--data-root", type=click.Path(file_okay=False), help="Where the CIFAR / ImageNet16 pickles are.")
@click.option("--table-source", type=click.Path(file_okay=False), help="Results table folder (default: embedded).")
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda.")
@click.option("--threads", type=int, default=1, show_default=True, help="torch intra-op threads.")
@click.option("--plot/--no-plot", default=True, show_default=True, help="Write alphas.png (needs rb201[plot]).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def dsrna(
    dataset: str,
    metric: str,
    epochs: int,
    channels: int,
    n_cells: int,
    batch_size: int,
    n_train: int,
    gamma: float,
    eps: float,
    q: float,
    bound: str,
    reg_batch: int,
    seed: int,
    second_order: bool,
    exclude_none: bool,
    out: str | None,
    resume: bool,
    data_root: str | None,
    table_source: str | None,
    device: str,
    threads: int,
    plot: bool,
    as_json: bool,
) -> None:
    """Search an NB201 cell with DSRNA (DARTS + robustness regulariser) and print the derived cell.

    Weights: SGD lr 0.025 cosine to 0.001, momentum 0.9, wd 3e-4; alphas: Adam lr 3e-4, betas (0.5, 0.999),
    wd 1e-3. On a published dataset the derived cell is looked up in the results table.

    \b
    Examples:
      rb201 search dsrna --dataset mnist5k --metric jacobian --epochs 3 --out runs/jac
      rb201 search dsrna --metric certified --eps 2 --epochs 3 --out runs/cb
      rb201 search dsrna --dataset cifar10 --data-root ~/data --metric none --epochs 10 --out runs/darts
    """
    from ..search.dsrna import DSRNAConfig, search, summarize

    cfg = run_library(
        DSRNAConfig,
        dataset=dataset,
        metric=metric,
        epochs=epochs,
        channels=channels,
        n_cells=n_cells,
        batch_size=batch_size,
        n_train=n_train,
        gamma=gamma,
        eps=eps,
        q=q,
        bound=bound,
        reg_batch=reg_batch,
        second_order=second_order,
        exclude_none=exclude_none,
        seed=seed,
    )
    if resume and out is None:
        raise click.UsageError("--resume needs --out (the folder holding the checkpoint)")

    def progress(epoch: int, stats: dict[str, float]) -> None:
        if not as_json:
            click.echo(
                f"epoch {epoch + 1}/{cfg.epochs}  train loss {stats['train_loss']:.4f}  acc {stats['train_acc']:.3f}"
                f"  val loss {stats['val_loss']:.4f}  R {stats['reg']:.4g}  {stats['seconds']:.1f} s",
                err=True,
            )

    result = run_library(
        search, cfg, out, resume=resume, data_root=data_root, on_epoch=progress, threads=threads, device=device
    )
    info = run_library(summarize, result, out, table_source=table_source, plot=plot)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"derived cell    {info['arch']}")
    click.echo(f"index           {info['index']} (representative {info['representative']})")
    if info["dead"]:
        click.echo("warning         'none' won on edges that disconnect input from output: the cell is dead")
    click.echo(f"search time     {result.total_seconds:.1f} s ({len(result.history)} epochs this run and before)")
    if "table" in info:
        click.echo(f"table ({cfg.dataset}, {info['table']['n_classes']} classes): value, percentile")
        for col in ("clean", "nb201_test_accuracy", "fgsm@1", "pgd@1", "fgsm@8", "pgd@8", "aa_apgd-ce@1"):
            if col in info["table"]["values"]:
                pct = info["table"]["percentiles"].get(col, float("nan"))
                click.echo(f"  {col:<20}{info['table']['values'][col]:>8.4f}{pct:>8.1f}%")
    elif "table_error" in info:
        click.echo(f"table lookup    unavailable: {info['table_error']}")
    if out is not None:
        click.echo(f"result          {Path(out) / 'dsrna_result.json'}")
        if "plot" in info:
            click.echo(f"alphas plot     {info['plot']}")
