"""``rb201 fetch-data`` and ``rb201 train``: explicit dataset downloads and training with a recipe (NB201 protocol
or NAS-RobBench-201 adversarial training; no torch import at module level)."""

from __future__ import annotations

from typing import Any

import click

from . import run_library
from .options import recipe_options
from .train_lever_opts import lever_options, levers_of, train_in_workers

ROOT_HELP = "Data root (default: $RB201_DATA or ~/.cache/rb201/data)."


@click.command("fetch-data")
@click.argument("dataset")
@click.option("--root", type=click.Path(file_okay=False), help=ROOT_HELP)
@click.option("--url", help="Download from this mirror instead of the official URL.")
@click.option("--hash", "known_hash", help="Expected hash of the mirror's archive, pooch syntax (md5:..., sha256:...).")
@click.option("--force", is_flag=True, help="Download again even if the files are present.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def fetch_data(
    dataset: str, root: str | None, url: str | None, known_hash: str | None, force: bool, no_progress: bool
) -> None:
    """Download and unpack the official archive of DATASET (cifar10 or cifar100), hash-checked.

    \b
    Examples:
      rb201 fetch-data cifar10
      RB201_DATA=/scratch/data rb201 fetch-data cifar100
    """
    from ..data.fetch_data import fetch_data as fetch

    folder = run_library(fetch, dataset, root, url=url, known_hash=known_hash, progress=not no_progress, force=force)
    click.echo(f"{dataset}: {folder}")


def _check_device(device: str) -> str:
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise click.BadParameter(f"{device!r} is not a device; use cpu or cuda:N", param_hint="--device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter(f"{device!r} requested but CUDA is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise click.BadParameter(f"device type {dev.type!r} not supported; allowed: cpu, cuda:N")
    return str(dev)


@click.command("train")
@click.option("--arch", "archs", multiple=True, required=True, help="NB201 string, index or op tuple (repeatable).")
@click.option("--dataset", "-d", required=True, help="cifar10, cifar100, ImageNet16-120 or mnist5k.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Epochs [default: the recipe's: nb201 200 (12 short), wu2024 50].")  # fmt: skip
@click.option("--seed", "seeds", type=click.IntRange(min=0), multiple=True, default=(777,), show_default=True,
              help="Training seed (repeatable; NB201 uses 777, 888, 999).")  # fmt: skip
@click.option("--channels", type=click.IntRange(min=1), default=16, show_default=True, help="Stem channels C.")
@click.option("--cells", "n_cells", type=click.IntRange(min=1), default=5, show_default=True, help="Cells per stage N.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Checkpoint directory.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda:N.")
@click.option("--n-train", type=click.IntRange(min=1), help="Train on a fixed subset of this many images (seed 0).")
@click.option("--n-test", type=click.IntRange(min=1), help="Report accuracy on a fixed subset of the test split.")
@click.option("--no-test", is_flag=True, help="Do not evaluate on the test split.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="[default: the recipe's, 256]")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch (1 is fastest on a busy machine).")
@click.option("--root", type=click.Path(file_okay=False), help=ROOT_HELP)
@recipe_options
@lever_options
def train(
    archs: tuple[str, ...],
    dataset: str,
    epochs: int | None,
    seeds: tuple[int, ...],
    channels: int,
    n_cells: int,
    out: str,
    device: str,
    n_train: int | None,
    n_test: int | None,
    no_test: bool,
    batch_size: int | None,
    threads: int | None,
    root: str | None,
    recipe: str | None,
    adversarial: str | None,
    adv_eps: float | None,
    adv_step: float | None,
    adv_steps: int | None,
    holdout: str | None,
    **lever_opts: Any,
) -> None:
    """Train NB201 networks with a recipe into OUT/{dataset}/: {index:05d}-seed{S}-ep{E}.pt for the NB201 protocol,
    {index:05d}-seed{S}-{recipe}-{E}ep-{hash8}.pt for any other recipe (every hyper-parameter is in the hash).

    A checkpoint is written after every epoch; rerunning the same command resumes an interrupted run and skips
    finished ones. The recipe's holdout (validation split) never enters training.

    \b
    Examples:
      rb201 train --arch 1462 --dataset cifar10 --epochs 200 --seed 777 --out weights/ --device cuda:0
      rb201 train --arch 1462 --dataset cifar10 --recipe wu2024 --seed 0 --out weights/ --device cuda:0
      rb201 train --arch 1462 --arch 0 --dataset mnist5k --epochs 3 --channels 8 --cells 1 --out demo/
      rb201 train --arch 1462 --dataset mnist5k --epochs 3 --adversarial pgd --adv-eps 32 --adv-step 8 --out adv/
      rb201 train --arch 0 --arch 7 --arch 1462 --dataset cifar10 --out weights/ --device cuda:0 --workers-per-gpu 3
    """
    from ..data.info import canonical_dataset
    from ..data.readers import load_dataset
    from ..recipe import TrainRecipe
    from ..space import Arch
    from ..train import ensure_trained

    ds = run_library(canonical_dataset, dataset)
    parsed = [run_library(Arch.parse, a) for a in archs]
    r = run_library(
        TrainRecipe.of,
        recipe or "nb201",
        epochs=epochs,
        batch_size=batch_size,
        adversarial=adversarial,
        adv_eps=adv_eps,
        adv_step=adv_step,
        adv_steps=adv_steps,
        holdout=holdout,
    )
    dev = _check_device(device)
    levers = run_library(levers_of, lever_opts)
    if lever_opts["workers_per_gpu"] > 1:
        train_in_workers([str(a.index) for a in parsed], list(seeds), lever_opts["workers_per_gpu"])
        return
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    train_set = run_library(load_dataset, ds, root, "train", n=n_train, seed=0)
    test_set = None if no_test else run_library(load_dataset, ds, root, "test", n=n_test, seed=0)
    click.echo(f"{ds}: {len(train_set)} training images" + ("" if test_set is None else f", {len(test_set)} test"))
    click.echo(f"recipe {r.describe()}; weights label {r.label}")
    for a in parsed:
        for seed in seeds:
            label = f"arch {a.index} seed {seed}"

            def report(stats, label=label) -> None:  # type: ignore[no-untyped-def]
                test = "" if stats.test_acc is None else f" test_acc {stats.test_acc:.4f}"
                click.echo(
                    f"{label} epoch {stats.epoch}/{r.epochs}: loss {stats.loss:.4f} train_acc {stats.train_acc:.4f}"
                    f"{test} lr {stats.lr:.4g} ({stats.seconds:.1f} s)"
                )

            net = run_library(
                ensure_trained, out, a, ds, train_set, seed=seed, recipe=r, channels=channels, n_cells=n_cells,
                device=dev, test_set=test_set, on_epoch_end=report, levers=levers,
                on_resume=lambda partial, label=label: click.echo(f"{label}: resuming from {partial}"),
            )  # fmt: skip
            if net.result is None:
                click.echo(f"{label}: already trained, {net.path}")
                continue
            res = net.result
            speed = f", {res.images_per_s:.0f} images/s" if res.images_per_s else ""
            click.echo(f"{label}: saved {net.path} ({res.wall_time_s:.1f} s{speed})")
