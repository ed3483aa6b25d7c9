"""``rb201 search dsrna``: DSRNA differentiable robust search on a small supernet, or (``--compare``) DSRNA against
plain DARTS against random cells. Defaults come from the library's settings (torch is imported on use only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..search.dsrna.config import CompareConfig, DSRNAConfig
from ..vocab import CERTIFIED_METHODS, DSRNA_CHANCE_MODES, DSRNA_GAMMA_MODES, DSRNA_METRICS
from . import run_library

_D = DSRNAConfig()
_C = CompareConfig()


def _ints(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected comma-separated integers, e.g. 0,1,2") from None


def _floats(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected comma-separated numbers, e.g. 2,8") from None


def _metrics(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [n for n in names if n not in DSRNA_METRICS]
    if bad:
        raise click.BadParameter(f"unknown metric(s) {', '.join(bad)}; allowed: {', '.join(DSRNA_METRICS)}")
    return names


def _csv(values: tuple[Any, ...]) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


@click.command("dsrna")
@click.option(
    "--dataset", "-d", default=_D.dataset, show_default=True, help="mnist5k, cifar10, cifar100, ImageNet16-120."
)
@click.option(
    "--metric",
    type=click.Choice(DSRNA_METRICS),
    default=_D.metric,
    show_default=True,
    help="Robustness regulariser R (none: plain DARTS; table: the results table's expectation, table-st: its argmax "
    "cell with a straight-through gradient).",
)
@click.option("--epochs", type=int, default=_D.epochs, show_default=True, help="Search epochs (DARTS/NB201: 50).")
@click.option("--channels", type=int, default=_D.channels, show_default=True, help="Supernet width C (NB201: 16).")
@click.option("--cells", "n_cells", type=int, default=_D.n_cells, show_default=True, help="Cells per stage N (5).")
@click.option("--batch-size", type=int, default=_D.batch_size, show_default=True, help="DARTS/NB201: 64.")
@click.option("--n-train", type=int, default=_D.n_train, show_default=True, help="Search images (weights + alphas).")
@click.option("--split", type=float, default=_D.split, show_default=True, help="Share of --n-train for the weights.")
@click.option("--gamma-mode", type=click.Choice(DSRNA_GAMMA_MODES), default=_D.gamma_mode, show_default=True,
              help="absolute: L_val - gamma R (the paper); relative: gamma x (L_val/|R| at start) x R.")  # fmt: skip
@click.option("--gamma", type=float, help="Gamma of every regulariser [default: 0.01 absolute, 0.5 relative].")
@click.option("--gamma-jacobian", type=float, help="Gamma of R_Jac (overrides --gamma).")
@click.option("--gamma-certified", type=float, help="Gamma of R_CB (overrides --gamma).")
@click.option("--gamma-table", type=float, help="Gamma of R_table (overrides --gamma; absolute mode default: 1).")
@click.option("--surrogate-column", default=_D.surrogate_column, show_default=True,
              help="R_table: table column or expression, e.g. pgd@1, mean_adv, '0.5*clean + 0.5*fgsm@1'.")  # fmt: skip
@click.option("--surrogate-dataset", help="R_table: the table's dataset [default: the search's, else cifar10].")
@click.option("--surrogate-chance", type=click.Choice(DSRNA_CHANCE_MODES), default=_D.surrogate_chance,
              show_default=True, help="R_table: how chance accuracy (dead cells) is kept from counting.")  # fmt: skip
@click.option("--calib-batches", type=int, default=_D.calib_batches, show_default=True,
              help="Validation batches that measure L_val/|R| at the start (relative mode).")  # fmt: skip
@click.option("--eps", type=float, default=_D.eps, show_default=True, help="L-inf radius in pixel units of 1/255.")
@click.option("--q", type=float, default=_D.q, show_default=True, help="Norm of the Jacobian rows (1: dual of L-inf).")
@click.option("--bound", type=click.Choice(CERTIFIED_METHODS), default=_D.bound, show_default=True,
              help="Bound method of R_CB.")  # fmt: skip
@click.option("--reg-batch", type=int, default=_D.reg_batch, show_default=True, help="Validation images per step in R.")
@click.option("--seed", type=int, default=_D.seed, show_default=True)
@click.option("--second-order", is_flag=True, help="DARTS unrolled (second-order) alpha gradient.")
@click.option("--exclude-none", is_flag=True, help="Derive without 'none' (original DARTS; NB201 keeps it).")
@click.option("--w-lr", type=float, default=_D.w_lr, show_default=True, help="Weight SGD lr (cosine to --w-lr-min).")
@click.option("--w-lr-min", type=float, default=_D.w_lr_min, show_default=True)
@click.option("--w-momentum", type=float, default=_D.w_momentum, show_default=True)
@click.option("--w-nesterov", is_flag=True, help="Nesterov momentum for the weights (NB201's DARTS).")
@click.option("--w-weight-decay", type=float, default=_D.w_weight_decay, show_default=True, help="NB201: 5e-4.")
@click.option("--grad-clip", type=float, default=_D.grad_clip, show_default=True, help="Weight gradient norm clip.")
@click.option("--a-lr", type=float, help="Alpha Adam lr [default: auto, the DARTS step budget for this search size].")
@click.option("--a-betas", callback=_floats, default=_csv(_D.a_betas), show_default=True, help="Alpha Adam betas.")
@click.option("--a-weight-decay", type=float, default=_D.a_weight_decay, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), help="Folder for checkpoints, results and figures.")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --out (a search).")
@click.option("--data-root", type=click.Path(file_okay=False), help="Where the CIFAR / ImageNet16 pickles are.")
@click.option("--table-source", type=click.Path(file_okay=False),
              help="Results dataset folder that scores the cells and guides R_table [default: embedded].")  # fmt: skip
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda.")
@click.option("--threads", type=int, default=1, show_default=True, help="torch intra-op threads (a search).")
@click.option("--plot/--no-plot", default=True, show_default=True, help="Write figures (needs rb201[plot]).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--compare", is_flag=True, help="Run every --metrics for every --seeds and score the cells.")
@click.option("--seeds", callback=_ints, help=f"Compare: search seeds [default: {_csv(_C.seeds)}].")
@click.option("--metrics", callback=_metrics, help=f"Compare: regularisers [default: {_csv(_C.metrics)}].")
@click.option("--random-cells", type=int, default=_C.n_random, show_default=True, help="Compare: random live cells.")
@click.option("--random-seed", type=int, default=_C.random_seed, show_default=True)
@click.option("--train-epochs", type=int, default=_C.train_epochs, show_default=True,
              help="Compare without a table: epochs of the NB201 trainer per cell.")  # fmt: skip
@click.option("--train-seeds", callback=_ints, default=_csv(_C.train_seeds), show_default=True,
              help="Compare without a table: training seeds per cell.")  # fmt: skip
@click.option("--score-n-train", type=int, help="Compare without a table: training images [default: all].")
@click.option("--n-test", type=int, default=_C.n_test, show_default=True, help="Compare: test images attacked.")
@click.option("--score-eps", callback=_floats, default=_csv(_C.score_eps), show_default=True,
              help="Compare: FGSM and PGD epsilons (1/255).")  # fmt: skip
@click.option("--pgd-steps", type=int, default=_C.pgd_steps, show_default=True)
@click.option("--reference/--no-reference", default=_C.reference, show_default=True,
              help="Compare without a table: also train the CIFAR-10 table's fgsm@1 optimum cell.")  # fmt: skip
@click.option("--workers", type=int, default=1, show_default=True, help="Compare: processes (one thread each).")
def dsrna(**kw: Any) -> None:
    """Search an NB201 cell with DSRNA (DARTS + robustness regulariser), or compare DSRNA with DARTS and random
    cells (--compare).

    Defaults and their sources (docs/SEARCH.md): weights SGD lr 0.025 cosine to 0.001, momentum 0.9, wd 3e-4,
    clip 5, batch 64, half/half split (DARTS); alphas Adam betas (0.5, 0.999), wd 1e-3 (DARTS, NB201), lr auto:
    NB201's DARTS step budget (3e-4 x 19550 steps) spread over this search's alpha steps, within [3e-4, 0.1]
    (0.084 for the defaults: 10 epochs of 1000 MNIST-5k images); gamma relative 0.5 (ours; the paper's 0.01 with
    --gamma-mode absolute). The text output shows each edge's top op, its softmax weight and lead over the second,
    the regularisers per epoch, and warnings when the cell is an argmax over noise, the identity, or has no
    convolution on an input-output path. On a dataset with a results table the cell is scored there; otherwise
    it is scored on CIFAR-10's table as a labelled transfer estimate. R_table (--metric table, table-st,
    table+jacobian, table+certified) is the exact expectation of a table column over the 15625 cells under the
    architecture weights, with chance accuracy gated by clean accuracy (--surrogate-chance); the output names the
    column and table that guided the search, the cell's percentile in it, and for a transfer (MNIST-5k under
    CIFAR-10's table) the Kendall tau of the column between the published tables.

    \b
    Examples:
      rb201 search dsrna --metric jacobian --out runs/jac
      rb201 search dsrna --metric certified --gamma-mode absolute --epochs 20 --out runs/cb
      rb201 search dsrna --metric table --surrogate-column pgd@1 --out runs/table
      rb201 search dsrna --compare --seeds 0,1,2 --workers 2 --out runs/compare
      rb201 search dsrna --compare --metrics none,jacobian,certified,table --out runs/compare-table
      rb201 search dsrna --dataset cifar10 --data-root ~/data --metric none --n-train 50000 --epochs 50 \\
          --channels 16 --cells 5 --device cuda --out runs/darts
    """
    cfg = _config(kw)
    if kw["compare"]:
        _compare(cfg, kw)
        return
    for name in ("seeds", "metrics", "score_n_train"):
        if kw[name] is not None:
            raise click.UsageError(f"--{name.replace('_', '-')} needs --compare (a single search uses --seed)")
    _single(cfg, kw)


def _config(kw: dict[str, Any]) -> DSRNAConfig:
    gamma = kw["gamma"]
    return run_library(
        DSRNAConfig,
        dataset=kw["dataset"],
        metric=kw["metric"],
        epochs=kw["epochs"],
        channels=kw["channels"],
        n_cells=kw["n_cells"],
        batch_size=kw["batch_size"],
        n_train=kw["n_train"],
        split=kw["split"],
        gamma_mode=kw["gamma_mode"],
        gamma_jacobian=kw["gamma_jacobian"] if kw["gamma_jacobian"] is not None else gamma,
        gamma_certified=kw["gamma_certified"] if kw["gamma_certified"] is not None else gamma,
        gamma_table=kw["gamma_table"] if kw["gamma_table"] is not None else gamma,
        surrogate_column=kw["surrogate_column"],
        surrogate_dataset=kw["surrogate_dataset"],
        surrogate_source=kw["table_source"],
        surrogate_chance=kw["surrogate_chance"],
        calib_batches=kw["calib_batches"],
        eps=kw["eps"],
        q=kw["q"],
        bound=kw["bound"],
        reg_batch=kw["reg_batch"],
        second_order=kw["second_order"],
        exclude_none=kw["exclude_none"],
        seed=kw["seed"],
        w_lr=kw["w_lr"],
        w_lr_min=kw["w_lr_min"],
        w_momentum=kw["w_momentum"],
        w_nesterov=kw["w_nesterov"],
        w_weight_decay=kw["w_weight_decay"],
        grad_clip=kw["grad_clip"],
        a_lr=kw["a_lr"],
        a_betas=kw["a_betas"],
        a_weight_decay=kw["a_weight_decay"],
    )


def _single(cfg: DSRNAConfig, kw: dict[str, Any]) -> None:
    from ..search.dsrna.bilevel import search
    from ..search.dsrna.summary import summarize
    from ._dsrna_text import epoch_line, summary_lines

    out, as_json = kw["out"], kw["as_json"]
    if kw["resume"] and out is None:
        raise click.UsageError("--resume needs --out (the folder holding the checkpoint)")

    def progress(epoch: int, stats: dict[str, float]) -> None:
        if not as_json:
            click.echo(epoch_line(epoch, cfg.epochs, stats, cfg.terms), err=True)

    result = run_library(
        search,
        cfg,
        out,
        resume=kw["resume"],
        data_root=kw["data_root"],
        on_epoch=progress,
        threads=kw["threads"],
        device=kw["device"],
    )
    info = run_library(summarize, result, out, table_source=kw["table_source"], plot=kw["plot"])
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for line in summary_lines(info, result.total_seconds, len(result.history)):
        click.echo(line)
    if out is not None:
        click.echo(f"result          {Path(out) / 'dsrna_result.json'}")


def _compare(cfg: DSRNAConfig, kw: dict[str, Any]) -> None:
    from ..search.dsrna.comparison import compare
    from ..search.dsrna.comparison_report import render

    if kw["out"] is None:
        raise click.UsageError("--compare needs --out (the folder for the searches, the trained cells and the report)")
    if kw["resume"]:
        raise click.UsageError("--compare always resumes from what --out holds; drop --resume")
    ccfg = run_library(
        CompareConfig,
        search=cfg,
        metrics=kw["metrics"] or _C.metrics,
        seeds=kw["seeds"] or _C.seeds,
        n_random=kw["random_cells"],
        random_seed=kw["random_seed"],
        train_epochs=kw["train_epochs"],
        train_seeds=kw["train_seeds"],
        n_score_train=kw["score_n_train"],
        n_test=kw["n_test"],
        score_eps=kw["score_eps"],
        pgd_steps=kw["pgd_steps"],
        reference=kw["reference"],
    )

    def progress(line: str) -> None:
        if not kw["as_json"]:
            click.echo(line, err=True)

    report = run_library(
        compare,
        ccfg,
        kw["out"],
        data_root=kw["data_root"],
        table_source=kw["table_source"],
        workers=kw["workers"],
        device=kw["device"],
        plot=kw["plot"],
        on_progress=progress,
    )
    if kw["as_json"]:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(render(report, "text"))
    click.echo(f"\nreport          {Path(kw['out']) / 'compare.json'} (tables: compare.md)")
    if "plot" in report:
        click.echo(f"figure          {report['plot']}")
