"""The library's commands of ``leadrank`` (train, evaluate, score, route, recommend,
lookalike, simulate). ``service.cli`` adds serve, keys and demo to the same app.

Exit status: 0 on success, 2 on bad input (message on stderr), 1 otherwise. Where a
command writes CSV, stdout holds that CSV alone; progress and warnings go to stderr.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pandas as pd
import typer

from recommender.columns import Columns
from recommender.errors import DataError, LeadrankError, ModelFolderError, UnknownIdError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="leadrank",
    help="Personalised lead scoring, per-rep ranking, routing and lookalikes from your CRM "
    "history. Run `leadrank COMMAND --help` for each command, with an example.\n\n"
    "Example: leadrank simulate ./team && leadrank train ./team --out ./model && "
    "leadrank score ./model ./team/leads.csv",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = 2) -> None:
    """Print ``message`` to stderr and exit with ``code``."""
    typer.echo(f"leadrank: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(func: F) -> F:
    """Map leadrank errors to exit status 2 (bad input) and others to 1, on stderr."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (DataError, UnknownIdError, ModelFolderError) as exc:
            fail(str(exc), 2)
        except LeadrankError as exc:
            fail(str(exc), 1)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except BrokenPipeError:
            sys.exit(0)
        except Exception as exc:  # a bug: say so plainly, no traceback for users
            logging.getLogger("leadrank").debug("unexpected error", exc_info=True)
            fail(f"unexpected error: {type(exc).__name__}: {exc}", 1)

    return wrapper  # type: ignore[return-value]


def step_printer(label: str) -> Callable[[str], None]:
    """Return a progress callback that prints each step with elapsed time to stderr."""
    start = time.perf_counter()

    def say(step: str) -> None:
        typer.echo(f"[{time.perf_counter() - start:6.1f}s] {label}: {step}...", err=True)

    return say


def write_csv(frame: pd.DataFrame) -> None:
    """Write ``frame`` as CSV to stdout (header first, no index)."""
    frame.to_csv(sys.stdout, index=False, lineterminator="\n")


def _load_bundle(model: Path, accounts: Path | None = None) -> Any:
    from recommender.bundle import ModelBundle

    bundle = ModelBundle.load(model)
    if accounts is not None:
        bundle = bundle.with_accounts(accounts)
    return bundle


def _read_events(path: Path | None, leads: pd.DataFrame) -> pd.DataFrame | None:
    if path is None:
        return None
    from recommender.data.load import load_events_file

    return load_events_file(path, leads)


ModelArg = Annotated[
    Path, typer.Argument(metavar="MODEL", help="A model folder written by `leadrank train`.")
]
LeadsArg = Annotated[
    Path, typer.Argument(metavar="LEADS", help="A CSV of leads (the leads.csv columns).")
]
AccountsOpt = Annotated[
    Path | None, typer.Option("--accounts", help="A newer accounts.csv to join onto the leads.")
]
EventsOpt = Annotated[
    Path | None,
    typer.Option("--events", help="An events.csv with these leads' engagement (optional)."),
]


# The affinity options' defaults are TrainConfig's (kept equal by a test), written out so
# that ``leadrank --help`` does not import the library.
CROSSES_DEFAULT = "firmographic"
"""``--crosses`` default: ``TrainConfig.affinity_crosses``'s."""
ENGINE_DEFAULT = "lowrank"
"""``--engine`` default: ``TrainConfig.affinity_engine``'s."""
FEATURES_DEFAULT = "firmographic"
"""``--affinity-features`` default: ``TrainConfig.affinity_features``'s."""
BINS_DEFAULT = "magnitude"
"""``--affinity-bins`` default: ``TrainConfig.affinity_bins``'s."""
EngineOpt = Annotated[
    str, typer.Option(help="Affinity engine: lowrank, lightfm, implicit or pair.")
]
CrossesOpt = Annotated[
    str,
    typer.Option(
        help="Crossed lead indicators in the affinity model: none, firmographic "
        "(pairs of account columns) or all."
    ),
]

FeaturesOpt = Annotated[
    str,
    typer.Option(
        "--affinity-features",
        help="Lead columns the affinity model reads: firmographic (the account columns; "
        "all where the data has no accounts) or all.",
    ),
]


BinsOpt = Annotated[
    str,
    typer.Option(
        "--affinity-bins",
        help="How the affinity model cuts numbers: magnitude (powers of ten for columns "
        "spread over orders of magnitude, such as company size) or quantile.",
    ),
]


def _check_affinity_options(
    engine: str, crosses: str, features: str = FEATURES_DEFAULT, bins: str = BINS_DEFAULT
) -> None:
    """Exit 2 naming the option when ``--engine``, ``--crosses``, ``--affinity-features``
    or ``--affinity-bins`` is not a known value."""
    from recommender.config import AFFINITY_BINS, AFFINITY_CROSSES, AFFINITY_FEATURES
    from recommender.models.affinity import ENGINES

    if engine not in ENGINES:
        fail(f"--engine must be one of {', '.join(ENGINES)}, not '{engine}'")
    if crosses not in AFFINITY_CROSSES:
        fail(f"--crosses must be one of {', '.join(AFFINITY_CROSSES)}, not '{crosses}'")
    if features not in AFFINITY_FEATURES:
        fail(f"--affinity-features must be one of {', '.join(AFFINITY_FEATURES)}, not '{features}'")
    if bins not in AFFINITY_BINS:
        fail(f"--affinity-bins must be one of {', '.join(AFFINITY_BINS)}, not '{bins}'")


@app.command()
@handle_errors
def train(
    data: Annotated[
        Path,
        typer.Argument(metavar="DATA", help="A dataset folder (leads.csv, outcomes.csv, ...)."),
    ],
    out: Annotated[Path, typer.Option("--out", help="The model folder to write.")],
    until: Annotated[
        str | None, typer.Option("--until", help="Use only leads created before this time.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    engine: EngineOpt = ENGINE_DEFAULT,
    crosses: CrossesOpt = CROSSES_DEFAULT,
    half_life: Annotated[
        float, typer.Option("--half-life", min=0.01, help="Engagement half-life in days.")
    ] = 14.0,
    features: FeaturesOpt = FEATURES_DEFAULT,
    bins: BinsOpt = BINS_DEFAULT,
) -> None:
    """Fit every model on the history and write a model folder.

    Example: leadrank train ./my-crm --out ./model --until 2026-06-01
    """
    from recommender.config import TrainConfig
    from recommender.pipeline import train as run_train

    _check_affinity_options(engine, crosses, features, bins)
    cfg = TrainConfig(
        seed=seed,
        affinity_engine=engine,
        affinity_crosses=crosses,
        affinity_features=features,
        affinity_bins=bins,
        half_life_days=half_life,
    )
    cut = _parse_time(until, "--until") if until else None
    bundle = run_train(data, out, until=cut, config=cfg, progress=step_printer("train"))
    window = bundle.manifest["training_window"]
    report = bundle.manifest["metrics"]["lead_score"]
    affinity = bundle.manifest["metrics"].get("affinity") or {}
    typer.echo(
        f"wrote {out}: {window['n_leads']} leads ({window['n_converted']} converted), "
        f"lead model '{report.get('chosen')}', readiness: {report.get('ready')}; "
        f"per-rep strength {affinity.get('strength', 0.0):.2f} over "
        f"{len(bundle.model_reps)} reps (0 = no significant per-rep signal yet)",
        err=True,
    )
    for reason in report.get("reasons", []):
        typer.echo(f"  - {reason}", err=True)


def _parse_time(value: str, option: str) -> pd.Timestamp:
    try:
        t = pd.Timestamp(value)
    except (ValueError, TypeError):
        fail(f"{option}: '{value}' is not an ISO 8601 date or datetime")
    if pd.isna(t):
        fail(f"{option}: '{value}' is not an ISO 8601 date or datetime")
    return t.tz_convert(None) if t.tzinfo is not None else t


@app.command()
@handle_errors
def evaluate(
    data: Annotated[Path, typer.Argument(metavar="DATA", help="A dataset folder.")],
    split_time: Annotated[
        str, typer.Option("--split-time", help="Train before this time, test at or after.")
    ],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the JSON report to this file.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    placebo: Annotated[
        bool, typer.Option(help="Also fit the rep-permuted placebo (per-rep significance).")
    ] = True,
    half_life: Annotated[
        float, typer.Option("--half-life", min=0.01, help="Engagement half-life in days.")
    ] = 14.0,
    engine: EngineOpt = ENGINE_DEFAULT,
    crosses: CrossesOpt = CROSSES_DEFAULT,
    features: FeaturesOpt = FEATURES_DEFAULT,
    bins: BinsOpt = BINS_DEFAULT,
) -> None:
    """Train on leads created before T, test on the rest, print a report, write JSON.

    Example: leadrank evaluate ./my-crm --split-time 2026-09-01 --json report.json
    """
    from recommender.artifacts import write_json
    from recommender.config import TrainConfig
    from recommender.evaluation.evaluate import evaluate as run_evaluate
    from recommender.evaluation.report import render_report

    _check_affinity_options(engine, crosses, features, bins)
    cut = _parse_time(split_time, "--split-time")
    if json_out is not None and not json_out.resolve().parent.is_dir():
        fail(f"--json: folder '{json_out.parent}' does not exist")  # before minutes of work
    config = TrainConfig(
        seed=seed,
        placebo=placebo,
        half_life_days=half_life,
        affinity_engine=engine,
        affinity_crosses=crosses,
        affinity_features=features,
        affinity_bins=bins,
    )
    result = run_evaluate(
        data,
        cut,
        config=config,
        progress=step_printer("evaluate"),
    )
    typer.echo(render_report(result))
    if json_out is not None:
        write_json(json_out, result)
        typer.echo(f"wrote {json_out}", err=True)


@app.command()
@handle_errors
def score(
    model: ModelArg,
    leads: LeadsArg,
    accounts: AccountsOpt = None,
    events: EventsOpt = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Count engagement before this time (default: each "
            "lead's created_at + the horizon, or now if sooner).",
        ),
    ] = None,
) -> None:
    """Score leads: probability, 0-100 score, grade A-D and the top reasons (CSV on stdout).

    Example: leadrank score ./model new_leads.csv > scores.csv
    """
    bundle = _load_bundle(model, accounts)
    frame = bundle.read_leads_csv(leads)
    ev = _read_events(events, frame)
    when = _parse_time(as_of, "--as-of") if as_of else None
    out = bundle.score(frame, ev, when)
    out["reasons"] = out["reasons"].map(";".join)
    write_csv(out[[Columns.LEAD, "probability", "score", "grade", "reasons", "fit", "engagement"]])


@app.command()
@handle_errors
def route(
    model: ModelArg,
    leads: LeadsArg,
    reps: Annotated[Path, typer.Option("--reps", help="reps.csv: rep_id, capacity, active.")],
    seed: Annotated[int, typer.Option(help="Seed of exploration and holdout draws.")] = 0,
    explore: Annotated[float, typer.Option(help="Share routed by exploration (0-1).")] = 0.0,
    holdout: Annotated[float, typer.Option(help="Share routed at random (0-1).")] = 0.0,
    accounts: AccountsOpt = None,
    events: EventsOpt = None,
) -> None:
    """Assign each lead to the best available rep within capacity (CSV on stdout).

    Never more leads to a rep on one created_at day than its capacity; only active reps.
    Leads no rep can take get an empty rep_id, with the reason on stderr.

    Example: leadrank route ./model today.csv --reps reps.csv --explore 0.1 --holdout 0.05
    """
    from recommender.data.load import load_reps
    from recommender.data.schema import Schema

    for name, share in (("--explore", explore), ("--holdout", holdout)):
        if not 0.0 <= share <= 1.0:
            fail(f"{name} must be between 0 and 1, not {share}")
    if explore + holdout > 1.0:
        fail("--explore plus --holdout must not exceed 1")
    bundle = _load_bundle(model, accounts)
    frame = bundle.read_leads_csv(leads)
    table, _, _ = load_reps(
        reps.parent, Schema(roles=bundle.schema.roles, missing=bundle.schema.missing), reps
    )
    known = set(bundle.model_reps)
    if table is not None and not known.intersection(table[Columns.REP].astype(str)):
        typer.echo(
            f"leadrank: warning: the model knows none of the {len(table)} reps in {reps} "
            "(it was trained on other reps, or on data without reps): every rep gets the "
            "global score, so routing only spreads the leads within capacity",
            err=True,
        )
    out = bundle.route(
        frame,
        reps=table,
        events=_read_events(events, frame),
        seed=seed,
        explore=explore,
        holdout=holdout,
    )
    for row in out.itertuples():
        if pd.isna(row.rep_id):
            typer.echo(f"lead {row.lead_id}: not assigned: {row.reason}", err=True)
    write_csv(out[[Columns.LEAD, Columns.REP, "probability", "policy", "propensity"]])


@app.command()
@handle_errors
def recommend(
    model: ModelArg,
    leads: LeadsArg,
    rep: Annotated[str, typer.Option("--rep", help="The rep whose list to build.")],
    k: Annotated[int, typer.Option("--k", min=1, help="How many leads.")] = 10,
    accounts: AccountsOpt = None,
    events: EventsOpt = None,
) -> None:
    """A rep's top K leads of a file, best first (CSV on stdout).

    Example: leadrank recommend ./model --rep R007 open_leads.csv --k 20
    """
    bundle = _load_bundle(model, accounts)
    frame = bundle.read_leads_csv(leads)
    out = bundle.recommend(rep, frame, k, _read_events(events, frame))
    out["reasons"] = out["reasons"].map(";".join)
    write_csv(out[[Columns.LEAD, "probability", "reasons"]])


@app.command()
@handle_errors
def lookalike(
    model: ModelArg,
    seeds: Annotated[
        str, typer.Option("--seeds", help="Comma-separated account (or lead) ids.")
    ] = "",
    k: Annotated[int, typer.Option("--k", min=1, help="How many results.")] = 100,
    exclude_customers: Annotated[
        bool, typer.Option("--exclude-customers", help="Leave out accounts already customers.")
    ] = False,
    exclude_assigned: Annotated[
        bool,
        typer.Option("--exclude-assigned", help="Leave out accounts (or leads) already worked."),
    ] = False,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", help="Keep accounts whose COLUMN=VALUE (repeatable)."),
    ] = None,
    rep: Annotated[
        str | None,
        typer.Option("--rep", help="Also seed with the accounts this rep won in the history."),
    ] = None,
) -> None:
    """The K accounts (or leads, without accounts) nearest the seeds (CSV on stdout).

    Only the seeds are excluded unless a filter flag is given.

    Example: leadrank lookalike ./model --seeds ACME,Globex --k 50 --exclude-customers

    Example: leadrank lookalike ./model --rep R007 --where region=EMEA --exclude-assigned
    """
    ids = [s.strip() for s in seeds.split(",") if s.strip()]
    if not ids and rep is None:
        fail("--seeds needs at least one id (or give --rep)")
    filters: dict[str, str] = {}
    for item in where or []:
        column, sep, value = item.partition("=")
        if not sep or not column.strip():
            fail(f"--where must look like COLUMN=VALUE, not '{item}'")
        filters[column.strip()] = value.strip()
    bundle = _load_bundle(model)
    if bundle.lookalike_kind != "account" and (exclude_customers or filters):
        typer.echo(
            "leadrank: warning: the model has no accounts (its catalogue is leads): "
            "--exclude-customers and --where have no effect",
            err=True,
        )
    empty_space = bundle.lookalike_warning()
    if empty_space:
        typer.echo(f"leadrank: warning: {empty_space}", err=True)
    out = bundle.lookalike(
        ids,
        k,
        exclude_customers=exclude_customers,
        exclude_assigned=exclude_assigned,
        where=filters,
        rep=rep,
    )
    id_col = Columns.ACCOUNT if bundle.lookalike_kind == "account" else Columns.LEAD
    if out.empty:
        typer.echo("no account or lead passes the filters", err=True)
    write_csv(out.rename(columns={"id": id_col}))


@app.command()
@handle_errors
def simulate(
    out: Annotated[
        Path, typer.Argument(metavar="OUT", help="The dataset folder to write (new or empty).")
    ],
    leads: Annotated[int, typer.Option("--leads", min=1, help="Number of leads.")] = 5000,
    reps: Annotated[int, typer.Option("--reps", min=1, help="Number of reps.")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 0,
    rep_effect: Annotated[
        float, typer.Option(help="Strength of the planted rep x segment affinity (0 = none).")
    ] = 1.0,
    days: Annotated[int, typer.Option(help="Days of history.")] = 365,
) -> None:
    """Write a synthetic sales team (contract format) with planted per-rep affinities.

    The ground truth (each lead's true conversion probability with every rep) goes to
    OUT/truth/, outside the dataset files.

    Example: leadrank simulate ./team --leads 20000 --reps 50 --seed 1
    """
    from recommender.data.simulate import simulate as run_simulate

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        fail(f"'{out}' exists and is not an empty folder")
    summary = run_simulate(
        out, n_leads=leads, n_reps=reps, seed=seed, rep_effect=rep_effect, days=days, progress=True
    )
    typer.echo(
        f"wrote {summary.out}: {summary.n_leads} leads, {summary.n_reps} reps, "
        f"{summary.n_events} events, {summary.conversion_rate:.1%} of closed outcomes won",
        err=True,
    )


def main() -> None:
    """Entry point of the library-only CLI (``python -m recommender.cli``)."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="leadrank: %(message)s")
    app()


if __name__ == "__main__":
    main()


__all__ = ["app", "fail", "handle_errors", "main"]
