"""What the paper-protocol benchmarks share: the budget on the command line (the paper's
preset, ``--reduced`` for a CPU-sized one, any knob overridden) and the result table, whose
rows say REDUCED whenever the budget is not the paper's."""

import statistics


def add_budget_options(parser, paper: dict) -> None:
    """``--reduced`` and one ``--<knob>`` option per key of the paper's preset."""
    parser.add_argument("--reduced", action="store_true", help="a CPU-sized budget (not comparable to the papers)")
    for key in paper:
        parser.add_argument("--" + key.replace("_", "-"), type=int, default=None, help=f"paper: {paper[key]}")


def budget(args, paper: dict, reduced_preset: dict) -> tuple[dict, bool]:
    """The budget to run, and whether it differs from the paper's."""
    cfg = dict(reduced_preset if args.reduced else paper)
    cfg.update({k: getattr(args, k) for k in paper if getattr(args, k) is not None})
    return cfg, args.reduced or cfg != paper


def print_header(cfg: dict, reduced: bool, device: str, torch_version: str) -> None:
    if reduced:
        print("REDUCED BUDGET - these numbers are NOT the paper protocol and NOT comparable to the published means:")
    else:
        print("Paper protocol (full budget).")
    print(f"device {device} | torch {torch_version} | config {cfg}\n")
    print("| method | dataset | ipc | ours: mean +- std over all models (%) | std of set means | sets x models | "
          "published | ours - published | wall time (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def print_row(name: str, dataset: str, ipc: int, accs, set_means, sets_x_models: str, published, wall: float,
              reduced: bool) -> None:
    """One row: all models pooled (as the papers do), beside the spread of the per-set means."""
    mean = statistics.mean(accs)
    std = statistics.stdev(accs) if len(accs) > 1 else 0.0
    sets_std = statistics.stdev(set_means) if len(set_means) > 1 else 0.0
    diff = "" if published is None else f"{mean - published:+.1f}"
    tag = " (REDUCED)" if reduced else ""
    print(f"| {name} | {dataset} | {ipc} | {mean:.1f} +- {std:.1f} | {sets_std:.1f} | {sets_x_models} | "
          f"{'-' if published is None else published} | {diff} | {wall:.0f}{tag} |", flush=True)
