"""The run engine: what ``exil <overrides>`` does, as a library. :func:`compose` builds the config a command
line would run, :func:`run` runs it to the end (or resumes it) and returns the run folder; :func:`build_loop` and
:func:`build_parts` instantiate what a run is made of. The command line (:mod:`exil.common.cli`) only turns argv
into these calls and their errors into messages; the Python API (:mod:`exil`), the reproductions and the tests
call them directly (as lightning-hydra-template's ``train(cfg)`` beside its ``main()``).

A resumed run is rebuilt from the config stored in its journal (:func:`_resumed_config`); the command line may
only add what never changes what is computed (:data:`SAFE_ON_RESUME`).
"""

from __future__ import annotations

import hashlib
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

from exil.common.abilities import USER_CONF_DIRS  # your --config-dir folders; the loop's checks read them

CONF_DIR = str(Path(__file__).resolve().parent / "conf")  # inside the package: a wheel carries every config


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("exil_run_dir"):
        # the run directory: the resumed run's own folder, else a fresh one
        OmegaConf.register_new_resolver("exil_run_dir", lambda resume, fresh: resume if resume else fresh)
    if not OmegaConf.has_resolver("exil_job_name"):
        # a W&B run's name: the job's own overrides (a sweep's jobs differ by them), else the run folder's name
        OmegaConf.register_new_resolver("exil_job_name", _job_name)
    if not OmegaConf.has_resolver("exil_sweep_group"):
        # a W&B group: the experiment, and in a multirun the sweep's folder, so a sweep's jobs sit together
        OmegaConf.register_new_resolver("exil_sweep_group", _sweep_group)
    if not OmegaConf.has_resolver("exil_devices_per_node"):
        # trainer=ddp_multi: processes per node and nodes, from torchrun's or SLURM's environment (1 without)
        from exil.common.launcher import devices_per_node, num_nodes

        OmegaConf.register_new_resolver("exil_devices_per_node", devices_per_node)
        OmegaConf.register_new_resolver("exil_num_nodes", num_nodes)
    if not OmegaConf.has_resolver("exil_run_id"):
        # a stable id per run directory (a resumed run continues the same W&B run)
        OmegaConf.register_new_resolver(
            "exil_run_id", lambda path: hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:16])


def _job_name() -> str:
    from hydra.core.hydra_config import HydraConfig

    try:
        hc = HydraConfig.get()
    except ValueError:  # no Hydra runtime (a config built by hand)
        return "exil"
    swept = _swept_keys(hc)
    if swept:  # a sweep's job: the values of what the sweep varies (loop.seed=1,strategy=random)
        parts = [o for o in hc.overrides.task if o.split("=", 1)[0].lstrip("+~") in swept]
        if parts:
            return ",".join(sorted(parts))
    # a single run: what it runs and its folder, not every override (which made names longer than W&B shows)
    choices = hc.runtime.choices
    what = choices.get("experiment") or f"{choices.get('method', 'exil')}/{choices.get('strategy', '')}".rstrip("/")
    return f"{what} {Path(hc.runtime.output_dir).name}"


def _swept_keys(hc) -> set[str]:
    """The keys a multirun sweeps over (``key=a,b`` or a sweep function), from its ``multirun.yaml``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    if hc.mode != RunMode.MULTIRUN:
        return set()
    path = Path(hc.sweep.dir) / "multirun.yaml"
    try:
        task = OmegaConf.load(path).hydra.overrides.task
        parsed = OverridesParser.create().parse_overrides([str(o) for o in task])
    except Exception:  # no multirun.yaml (another launcher) or one Hydra cannot parse: name by all overrides
        return set()
    return {o.key_or_group for o in parsed if o.is_sweep_override()}


def _sweep_group(experiment: str | None) -> str:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    group = experiment or "default"
    try:
        hc = HydraConfig.get()
    except ValueError:
        return group
    if hc.mode == RunMode.MULTIRUN:
        sweep = Path(hc.sweep.dir)
        group += f"/{sweep.parent.name}_{sweep.name}"
    return group


def use_config_dir(path: str | Path) -> Path:
    """Make a user's config folder usable: its YAML is searched (Hydra's ``--config-dir``) and the folder it sits
    in — the user's project — is importable, so a ``_target_: my_strategies.SmallestMargin`` next to it is found
    without ``PYTHONPATH``."""
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        from exil.common.errors import ConfigError

        raise ConfigError(f"--config-dir {path}: no such folder")
    for p in (str(path.parent), str(path)):
        if p not in sys.path:
            sys.path.insert(0, p)
    if path not in USER_CONF_DIRS:
        USER_CONF_DIRS.append(path)
    return path


def compose(overrides: list[str], run_dir: Path | None = None, config_dir: str | Path | None = None):
    """The config ``exil <overrides>`` would run, composed in-process, with Hydra's runtime set as in a
    real run in ``run_dir``: what tests and the reproduction scripts pass to :func:`run`. ``config_dir``:
    a folder of your own configs, as ``exil --config-dir``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    register_resolvers()
    overrides = list(overrides)
    if config_dir is not None:
        overrides.append(f"hydra.searchpath=[file://{use_config_dir(config_dir)}]")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)
    if run_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(run_dir)
            cfg.paths.log_dir = str(Path(run_dir).parent)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as in a real run: the task sees the config without the hydra node
    return cfg


def run(cfg) -> Path:
    """Build everything from the composed config and run the loop; returns the run directory. In a launched
    multi-process run (``trainer=ddp_multi``) rank 0 does this and the other ranks follow it
    (:mod:`exil.common.distributed`)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from exil.common.errors import ConfigError
    from exil.common.launcher import check_launch

    _quiet()
    team = None
    if check_launch(cfg.trainer) is not None:  # one of several processes: join them (torch loads here, not before)
        from exil.common import distributed

        team = distributed.join(cfg.trainer)  # once, where the run starts; passed to everything that uses it
    if team is not None and team.rank > 0:  # a follower: rank 0 sends the run's config and its commands
        from exil.common.follower import follow

        return Path(follow(team, lambda config, run_dir: build_parts(OmegaConf.create(config), team)) or ".")
    hydra = HydraConfig.get()
    run_dir = Path(hydra.runtime.output_dir)
    if cfg.loop.resume:
        if hydra.mode == RunMode.MULTIRUN:
            raise ConfigError("loop.resume resumes one run: drop -m")
        run_dir = Path(cfg.loop.resume)  # whatever hydra.run.dir says, the resumed run's own folder
        cfg = _resumed_config(cfg, run_dir)
    else:
        OmegaConf.set_struct(cfg, False)
        cfg.choices = dict(HydraConfig.get().runtime.choices)
        OmegaConf.set_struct(cfg, True)
    if team is not None:
        team.send_config(OmegaConf.to_container(cfg, resolve=True), str(run_dir))
        try:
            return _run_loop(cfg, run_dir, team)
        finally:
            team.done()
    return _run_loop(cfg, run_dir, None)


def _run_loop(cfg, run_dir: Path, team) -> Path:
    """:func:`_run_loop_in` with a full disk said in one line (:mod:`exil.common.disk_full`)."""
    import sqlite3

    from exil.common.disk_full import disk_full
    from exil.common.errors import ExilError

    try:
        return _run_loop_in(cfg, run_dir, team)
    except (OSError, sqlite3.Error, RuntimeError) as e:
        why = disk_full(e, run_dir)
        if why is None:
            raise
        raise ExilError(why) from e


def _run_loop_in(cfg, run_dir: Path, team) -> Path:
    loop = build_loop(cfg, run_dir, team)  # (a wrong value is said before the heavy imports: nothing above it)
    from exil.common.progress import RoundProgress
    from exil.common.report import run_report, wide_console

    console = wide_console()
    if cfg.get("print_config"):
        print_config(cfg, console)
    status = "failed"
    try:
        try:
            with RoundProgress(console, cfg.loop.rounds) as progress:
                loop.on_stage = progress
                loop.oracle.attach_display(progress.paused)
                loop.run()
        finally:
            loop.oracle.close()
        png = run_report(run_dir, console, loggers=loop.loggers)
        loop.run_log.final(final_metrics(run_dir))
        status = "success"
    finally:
        loop.run_log.finish(status)  # a W&B run is finished: the next job of a multirun opens its own
    console.print(f"[bold]learning curve:[/bold] {png}", soft_wrap=True)
    if loop.stopped_early:
        console.print(f"[bold yellow]note:[/bold yellow] {loop.stopped_early}")
    return run_dir


def print_config(cfg, console) -> None:
    """The resolved config as a tree, one branch per group (``print_config=false`` turns it off)."""
    from omegaconf import OmegaConf
    from rich.syntax import Syntax
    from rich.tree import Tree

    from exil.common.config_secrets import redact_config

    tree = Tree("config", guide_style="dim")
    first = ["dataset", "backbone", "method", "strategy", "oracle", "loop", "trainer", "logger"]
    for key in first + sorted(k for k in cfg if k not in first):
        if key not in cfg:
            continue
        node = cfg[key]
        plain = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        plain = redact_config(plain)  # a credential in a URL (oracle.client.base_url) is not printed
        text = OmegaConf.to_yaml(plain) if isinstance(plain, (dict, list)) else str(plain)
        tree.add(key, guide_style="dim").add(Syntax(text.rstrip(), "yaml", theme="ansi_dark", background_color="default"))
    console.print(tree)


def final_metrics(run_dir: Path) -> dict[str, float]:
    """The last round's test metrics and, for each, the area under its learning curve (``<metric>_auc``)."""
    from exil.common.report import area_under_curve, run_rows

    _, rows = run_rows(run_dir)
    if not rows:
        return {}
    out = {}
    for name in sorted(k for k in rows[-1] if k.startswith("test/")):
        out[f"final/{name}"] = float(rows[-1][name])
        out[f"final/{name}_auc"] = area_under_curve(rows, name)
    return out


def optimized_value(run_dir: Path, metric: str) -> float:
    """``metric`` of a finished run: ``test/acc`` (its last round) or ``test/acc_auc`` (the normalised area under
    its learning curve, :func:`exil.common.report.area_under_curve`)."""
    from exil.common.errors import ConfigError

    final = final_metrics(run_dir)
    key = f"final/{metric}"
    if key not in final:
        valid = sorted(k[len("final/"):] for k in final)
        raise ConfigError(f"optimized_metric={metric!r} is not a metric of this run; valid: {', '.join(valid)}")
    return final[key]


def build_loop(cfg, run_dir: Path, team=None):
    """Instantiate data, backbone, module, strategy, oracle, hooks, loggers and the loop from ``cfg``; ``team``:
    the run's processes when a launcher started several (:func:`exil.common.distributed.join`), else None."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    parts = build_parts(cfg, team)
    from exil.common.loop import ActiveLoop
    from exil.common.run_folder import refuse_if_live, refuse_links

    strategy = instantiate(cfg.strategy)
    oracle = instantiate(cfg.oracle)
    parts.hooks.check_loop(parts.loop_cfg, cfg.get("choices", {}).get("method", cfg.method.name))
    refuse_if_live(run_dir)  # before a logger opens (and Lightning's CSV writer truncates) anything in it
    if not cfg.loop.get("resume"):  # (a resumed folder was checked before its config was read)
        refuse_links(run_dir)  # nothing is written through a link placed in the folder
    loggers = [instantiate(c) for c in (cfg.logger or {}).values()]
    loop = ActiveLoop(parts.loop_cfg, parts.module, parts.dm, strategy, oracle, parts.hooks, parts.make_trainer,
                      run_dir, loggers=loggers, device=parts.device, config=journal_config(cfg),
                      overrides=_task_overrides(), team=team if team is not None and team.world_size > 1 else None)
    loop.check_composition()  # before any training (the loop checks again when it runs)
    loop.run_log.start(OmegaConf.to_container(cfg, resolve=True))
    return loop


def build_parts(cfg, team=None):
    """What every process of a run builds from ``cfg``: the typed loop settings, the data module, the module,
    the method's hooks, the round trainers' factory and the scoring device (the other ranks of a multi-process
    run build only these: :mod:`exil.common.distributed`). ``team``: this process's place in such a run."""
    from types import SimpleNamespace

    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError, ValidationError

    from exil.common.errors import ConfigError
    from exil.common.launcher import check_launch
    from exil.common.loop_config import LoopConfig

    check_missing(cfg)
    check_top_level(cfg)
    try:  # typed and checked first: loop.seed=abc or loop.rounds=-1 is one clear error before any work (or torch)
        loop_cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(LoopConfig), cfg.loop))
    except (ValidationError, ConfigKeyError) as e:
        key = f"loop.{e.full_key}" if getattr(e, "full_key", None) else "loop"
        raise ConfigError(f"{key}: {str(e.msg).splitlines()[0]}") from None
    import torch

    from exil.common.config_check import check_values
    from exil.common.loop import seed_init

    check_values(cfg)  # every value against what it builds, before anything is built or asked
    dm = instantiate(cfg.dataset)
    _refuse_text_for_an_image_model(cfg, dm)  # before setup, which may need a tokenizer the user has not fetched
    dm.setup()
    seed_init(loop_cfg.seed)  # the initial weights depend on the seed only
    backbone = instantiate(cfg.backbone, input_shape=list(dm.input_shape))
    module = instantiate(cfg.method.module, backbone=backbone, num_classes=dm.num_classes)
    hooks = instantiate(cfg.method.hooks)
    accel = str(cfg.trainer.get("accelerator", "cpu"))
    device = loop_cfg.device
    if device == "auto":
        device = "cuda" if accel in ("gpu", "cuda", "auto") and torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"loop.device={device}, but this machine has no GPU that PyTorch can use "
                          "(torch.cuda.is_available() is false): use loop.device=auto or cpu")
    if accel in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accel}, but this machine has no GPU that PyTorch can use: use "
                          "trainer=cpu (or trainer.accelerator=auto)")
    if team is None:
        check_launch(cfg.trainer)  # a launched run's trainer, or a ddp_multi trainer without one
    if team is not None and device == "cuda":
        device = str(team.device)

    def make_trainer(round: int, root: Path, single_device: bool = False):
        one = {"devices": 1, "num_nodes": 1, "strategy": "auto"} if single_device else {}
        extra = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
        return instantiate(cfg.trainer, default_root_dir=str(root), callbacks=[hooks, *extra], logger=False, **one)

    return SimpleNamespace(loop_cfg=loop_cfg, dm=dm, module=module, hooks=hooks, make_trainer=make_trainer,
                           device=device)


def _refuse_text_for_an_image_model(cfg, dm) -> None:
    """A text dataset given a model that does not read text, refused before the data module loads its tokenizer
    (the loop checks the whole composition again once everything is built)."""
    from hydra.utils import get_class

    from exil.common.abilities import TextData, check_composition
    from exil.common.data.text import TextDataModule

    if not isinstance(dm, TextDataModule):
        return
    try:
        module_cls = get_class(str(cfg.method.module._target_))
    except Exception:  # noqa: BLE001 - a target that cannot be located is reported when it is built
        return
    choices = cfg.get("choices") or {}
    check_composition({f"dataset={choices.get('dataset', type(dm).__name__)}": TextData}, {"module": module_cls},
                      choices)


#: ``???`` values that the code fills in before instantiation (from the data module and the backbone)
FILLED_IN_CODE = {"method.module.backbone", "method.module.num_classes"}


def check_missing(cfg) -> None:
    """Stop with one message naming every ``???`` value the user must set."""
    from omegaconf import OmegaConf

    from exil.common.errors import ConfigError

    missing = sorted(OmegaConf.missing_keys(cfg) - FILLED_IN_CODE)
    if missing:
        raise ConfigError("missing values: " + ", ".join(missing) + " — set them on the command line, e.g. "
                          + " ".join(f"{k}=..." for k in missing[:3]))


#: top-level keys besides the config groups (``conf/<group>/``): config.yaml's own, what experiments set,
#: and what ``run`` adds
TOP_LEVEL_KEYS = {"task_name", "experiment_name", "choices", "hydra", "defaults", "tags", "optimized_metric",
                  "print_config"}


def check_top_level(cfg) -> None:
    """Refuse a top-level key nothing reads (``+foo=1``, a misspelt group): it would be silently ignored."""
    from difflib import get_close_matches

    from exil.common.errors import ConfigError

    known = TOP_LEVEL_KEYS | {p.name for d in (Path(CONF_DIR), *USER_CONF_DIRS) for p in d.iterdir() if p.is_dir()}
    unknown = sorted(set(cfg) - known)
    if unknown:
        near = {k: get_close_matches(k, known, n=1) for k in unknown}
        said = ", ".join(f"{k}" + (f" (did you mean {near[k][0]}?)" if near[k] else "") for k in unknown)
        raise ConfigError(f"unknown top-level key {said}: nothing reads it; valid keys: {', '.join(sorted(known - {'defaults', 'hydra'}))}")


def journal_config(cfg) -> dict[str, Any]:
    """The config a run is identified by: everything but where it lives and whether it is resumed."""
    from omegaconf import OmegaConf

    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("paths", None)
    c.get("loop", {}).pop("resume", None)
    for lg in (c.get("logger") or {}).values():
        lg.pop("save_dir", None)
    return c


#: what a resumed run may change: where its logs go (the loggers never change what is computed)
SAFE_ON_RESUME = ("logger", "tags")


def _resumed_config(cfg, run_dir: Path):
    """The stored config of the run in ``loop.resume``. The command line's other overrides are refused, naming
    them, unless they are safe to change (:data:`SAFE_ON_RESUME`: a different logger, tags), which are applied.
    The run's ``.hydra/config.yaml`` (which Hydra just overwrote with the command line's) is rewritten to the
    config the run really uses."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from exil.common.config_secrets import redact_config
    from exil.common.errors import ConfigError, ExilError
    from exil.common.journal import read_journal
    from exil.common.run_folder import (
        RunFolderDamaged,
        check_journal,
        reaching_out,
        refuse_links,
        stored_config_problem,
    )

    resume = Path(cfg.loop.resume)
    journal = resume / "journal.sqlite"
    if not resume.is_dir():
        raise ExilError(f"loop.resume={resume}: no such folder; give the folder of the run to resume")
    refuse_links(resume)
    note = check_journal(journal)
    if note:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True, soft_wrap=True).print(f"[bold yellow]note:[/bold yellow] {escape(note)}", highlight=False)
    meta = read_journal(journal)["meta"]
    why = stored_config_problem(meta.get("config"), installed_targets())
    if why:
        raise RunFolderDamaged(f"{journal}: {why}")
    stored = OmegaConf.create(meta["config"])
    others = [o for o in HydraConfig.get().overrides.task if _override_key(o) != "loop.resume"]
    # an override that gives what the run has anyway is harmless (a launched run names its trainer=ddp_multi
    # again, since every process must know it is one of many before it reads the run)
    safe = [o for o in others if _override_key(o).startswith(SAFE_ON_RESUME)]
    unsafe = [o for o in others if o not in safe and not _same_as_stored(cfg, stored, o)]
    others = safe
    if unsafe:
        raise ConfigError(f"loop.resume continues {resume} with the config it was started with; "
                          f"{', '.join(unsafe)} would change what it computes and {'is' if len(unsafe) == 1 else 'are'} "
                          f"refused. Resume with `exil loop.resume={resume}` alone (a logger=... or tags=... may be "
                          "added), or start a new run with these settings")
    if others:  # a different logger or tags: applied, and said
        OmegaConf.set_struct(stored, False)
        stored.logger, stored.tags = cfg.logger, cfg.get("tags", [])
        print(f"resuming {resume} with its own config; applied: {', '.join(others)}")
    restated = {_override_key(o) for o in HydraConfig.get().overrides.task}
    plain = OmegaConf.to_container(stored)
    if others:  # the logger is the command line's own: only the rest comes from the folder
        plain.pop("logger", None)
    why = reaching_out(plain, _installed_reach(plain.get("choices") or {}), resume, restated)
    if why:
        raise ConfigError(f"loop.resume={resume}: {why}")
    stored.paths = cfg.paths
    stored.loop.resume = str(resume)
    for lg in (stored.get("logger") or {}).values():
        if _takes_save_dir(lg):  # where a logger writes is not stored (journal_config): the run's own folder
            lg.save_dir = str(run_dir)
    hydra_dir = resume / ".hydra"
    if hydra_dir.is_dir():  # Hydra wrote the command line's config and overrides here: put the run's back
        # (redacted: a journal written before credentials in URLs were redacted still has them)
        OmegaConf.save(OmegaConf.create(redact_config(OmegaConf.to_container(stored))), hydra_dir / "config.yaml")
        if meta.get("overrides") is not None:
            OmegaConf.save(OmegaConf.create(redact_config(list(meta["overrides"]))), hydra_dir / "overrides.yaml")
    return stored


def _installed_reach(choices: dict) -> dict:
    """The installed configs composed for a stored run's group choices (no values of its own), as plain data in
    which the keys that reach outside a run folder (:data:`exil.common.run_folder.REACHES_OUT`) are resolved
    (``${oc.env:OPENAI_BASE_URL,…}``: today's environment): what a resumed run may use without being told."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from exil.common.run_folder import REACHES_OUT

    overrides = [f"{g}={c}" for g, c in choices.items() if c is not None and not g.startswith("hydra/")]
    try:
        if GlobalHydra.instance().is_initialized():  # inside `exil`: its search path, --config-dir included
            installed = hydra_compose(config_name="config", overrides=overrides)
        else:  # the Python API (compose, then run)
            if USER_CONF_DIRS:
                overrides.append(f"hydra.searchpath=[{','.join(f'file://{d}' for d in USER_CONF_DIRS)}]")
            with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
                installed = hydra_compose(config_name="config", overrides=overrides)
    except Exception:  # a choice that is no longer installed: nothing reaches out without being restated
        return {}

    def walk(node, path):
        if isinstance(node, dict):
            return {k: (OmegaConf.select(installed, f"{path}{k}", default=None, throw_on_resolution_failure=False)
                        if k in REACHES_OUT and not isinstance(v, (dict, list)) else walk(v, f"{path}{k}."))
                    for k, v in node.items()}
        return node

    return walk(OmegaConf.to_container(installed, resolve=False), "")


def installed_targets() -> set[str]:
    """Every ``_target_`` the installed configs name, and those of the user's ``--config-dir`` folders: what a
    resumed run's stored config may build (:func:`exil.common.run_folder.stored_config_problem`)."""
    import re

    found: set[str] = set()
    pattern = re.compile(r"^\s*_target_:\s*([\w.]+)\s*(?:#.*)?$", re.M)
    for folder in (Path(CONF_DIR), *USER_CONF_DIRS):
        for path in Path(folder).rglob("*.yaml"):
            found.update(pattern.findall(path.read_text(encoding="utf-8", errors="replace")))
    return found


def _takes_save_dir(logger_cfg) -> bool:
    """Whether a logger's class takes ``save_dir`` (CSV, TensorBoard, W&B, MLflow, Comet do): a resumed run's
    loggers write into its folder whichever logger the resume command names (none: the stored ones)."""
    import inspect

    from hydra.utils import get_class

    try:
        cls = get_class(str(logger_cfg.get("_target_", "")))
    except Exception:  # noqa: BLE001 - a logger that cannot be located is reported when it is built
        return "save_dir" in logger_cfg
    for c in cls.__mro__:  # a subclass taking **kwargs (exil.common.loggers.WandbLogger) passes it to its base
        params = inspect.signature(c.__init__).parameters if "__init__" in vars(c) else {}
        if "save_dir" in params:
            return True
        if params and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return False
    return False


def _same_as_stored(cfg, stored, override: str) -> bool:
    """Whether ``override`` gives what the stored run has anyway: the same choice of a config group
    (``trainer=ddp_multi_cpu``), or the same value of a key."""
    from omegaconf import OmegaConf

    key, _, value = override.partition("=")
    key = key.lstrip("+~").replace("/", ".")
    choices = stored.get("choices") or {}
    if key in choices:
        return str(choices[key]) == value
    now, then = OmegaConf.select(cfg, key, default=None), OmegaConf.select(stored, key, default=None)
    if OmegaConf.is_config(now) or OmegaConf.is_config(then):
        return False
    return now is not None and now == then


def _task_overrides() -> list[str] | None:
    """The command line's overrides of this job (what ``.hydra/overrides.yaml`` says), if Hydra is running."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return [str(o) for o in HydraConfig.get().overrides.task]
    except ValueError:
        return None


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _quiet() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed", "lightning.pytorch.trainer.connectors.signal_connector"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*number of training batches.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*across ranks is zero.*")  # no validation set
    # a resumed run's logs: exil keeps their rows (RunLog.start, the journal's replay), so Lightning's notice
    # that the previous files "will be deleted" is not true of them
    warnings.filterwarnings("ignore", message=".*Previous log files in this directory will be deleted.*")
