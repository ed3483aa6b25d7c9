"""``rb201 analyze``: the analyses of Jung et al. (rank correlations, equal-parameter study, surrogates)."""

from __future__ import annotations

import json

import click

from . import run_library


def _fmt_matrix(m: dict) -> list[str]:  # type: ignore[type-arg]
    names = list(m)
    short = [n[:10] for n in names]
    lines = [" " * 12 + " ".join(f"{s:>10}" for s in short)]
    for r, s in zip(names, short, strict=True):
        lines.append(f"{s:>12}" + " ".join(f"{m[c][r]:10.3f}" for c in names))
    return lines


@click.command("analyze")
@click.argument("which", type=click.Choice(["kendall", "params", "surrogates", "all"]), default="all")
@click.option("--dataset", default="cifar10", show_default=True)
@click.option("--source", type=click.Path(), default=None, help="Dataset directory or wide .parquet/.csv table.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Folder for the figures (PNG).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def analyze(which: str, dataset: str, source: str | None, out: str | None, fmt: str) -> None:
    """Reproduce the analyses of Jung et al. (ICLR 2023) from a results table.

    WHICH: kendall (clean vs robust, attacks, corruptions), params (equal parameter count study), surrogates
    (Kendall tau of zero-cost proxies / Jacobian / Hessian with robustness), or all.

    \b
    Examples:
      rb201 analyze all --dataset cifar10 --out figures/
      rb201 analyze params --format json
    """
    from ..data.info import canonical_dataset
    from ..search.analysis import run_analyses
    from ..search.nas import load_table

    name = run_library(canonical_dataset, dataset)
    df = run_library(load_table, name, source)
    res = run_library(run_analyses, df, out, which, name)
    if fmt == "json":
        click.echo(json.dumps(res, indent=2, default=float))
        return
    click.echo(f"{name}: {res['rows']} architectures")
    if "clean_vs_robust" in res:
        click.echo("\nKendall tau, clean vs robust accuracy (epsilon in 1/255):")
        for r in res["clean_vs_robust"]:
            click.echo(f"  {r['attack']:>11} @ {r['epsilon']:<5g} {r['tau']:+.3f}")
    if "attacks_eps1" in res:
        click.echo("\nKendall tau between attacks at epsilon 1/255:")
        click.echo("\n".join(_fmt_matrix(res["attacks_eps1"])))
    if "corruptions" in res:
        m = res["corruptions"]
        vals = [m[a][b] for a in m for b in m if a < b]
        click.echo(f"\nKendall tau between {len(m)} corruptions: min {min(vals):.3f}, max {max(vals):.3f}")
    if "equal_params" in res:
        e = res["equal_params"]
        click.echo(
            f"\nequal parameter count ({e['cells']} cells with two 3x3 and no 1x1 conv): mean adversarial accuracy "
            f"{100 * e['min']:.1f}% (#{e['argmin']}) to {100 * e['max']:.1f}% (#{e['argmax']}) "
            f"[{e['averaging']} mean over {', '.join(e['attacks'])}; epsilons except {e['exclude_eps']}]"
        )
        for c in res["equal_params_candidates"]:
            click.echo(
                f"  {c['averaging']:>10}, excluding eps {str(c['exclude_eps']):8}: "
                f"{100 * c['min']:.1f}% to {100 * c['max']:.1f}%"
            )
    if "surrogates" in res:
        click.echo("\nKendall tau, surrogate vs accuracy:")
        for r in res["surrogates"]:
            click.echo(f"  {r['surrogate']:>20} vs {r['target']:<10} {r['tau']:+.3f} (n={r['n']})")
    for k, why in res["skipped"].items():
        click.echo(f"\nskipped {k}: {why}")
    if res["figures"]:
        click.echo("\nfigures:\n  " + "\n  ".join(res["figures"]))
