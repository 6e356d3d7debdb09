"""A person in the browser: ``oracle=web`` serves a page on which the loop's questions are answered.

The server (Starlette on uvicorn, :mod:`exil.common.web.app`) runs in a thread of the loop's own process and
starts with the run; ``exil`` says where the page is (:func:`announce`: the link with its token goes to the
terminal only, never into a log or a logger's copy of the console) and the loop waits for answers. Each round's
questions are offered at once (:meth:`offer`); answers are validated by their kind and committed to the
journal by the asker before the page is told they were saved; until the round is settled the person may
revise any of them. A killed and resumed run keeps its address and token (``<run dir>/oracle/web.json``,
readable by its owner only), so a page left open reconnects.

Secure by default: the server binds ``127.0.0.1``; every request needs the token (a fresh random one per
run unless ``$EXIL_WEB_TOKEN`` — never the config, which the journal stores — gives one); binding any
other address without a token is refused; request bodies are bounded; nothing is logged per request;
cross-site requests, framing and cookies shared between runs are refused (:mod:`exil.common.web.app`).
To let a colleague answer, bind ``host=0.0.0.0`` (keep the token) and send them the printed URL with
your machine's name, or better keep loopback and forward the port over SSH (README).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from exil.common.errors import ConfigError
from exil.common.oracle.base import Oracle, check_ignored
from exil.common.oracle.kinds import registered
from exil.common.oracle.question import OracleContext, Question
from exil.common.web.session import WebSession


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class WebOracle(Oracle):
    """The web teacher (module docstring).

    Args:
        host: the address to bind (``127.0.0.1``: this machine only).
        port: the port (0: a free one; a resumed run reuses its own).
        token: ``true`` (required: random, or ``$<token_env>``) or ``false`` (no token: loopback only).
        token_env: the environment variable that may hold the token.
        claim_seconds: how long a question shown in one tab is kept from the others without word from it.
        review_seconds: after a round's last answer, how long the person may still revise before the model
            trains (``0``: at once; the page's "hold" waits until "train now").
        max_body: the largest request accepted, in bytes.
        teachers: names of the people who teach this run (null: one, unnamed). Each gets their own token and
            link (``web.json`` keeps them; every link is printed), and the journal records who gave each answer.
        overlap: how many different teachers answer each question (1: one each; at most ``len(teachers)``).
            Every answer is kept; equal labels settle a question, different ones go to the ``reviewer``.
        reviewer: the teacher who settles disagreements (default: the first).
        show_model_explanation: false hides the model's prediction and explanation from the teachers (so they
            are not anchored by it); recorded in the run's config like any setting.
        print_fn: where the page's address is said (default :func:`announce`: the link with its token on the
            controlling terminal only, never into a log).
        **ignored: settings of the simulated / LLM teacher an experiment sets (``irrelevant_field``, ...):
            the person is the teacher here, so they are ignored (:data:`~exil.common.oracle.base.MACHINE_TEACHER_SETTINGS`).
    """

    live = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: bool = True, token_env: str = "EXIL_WEB_TOKEN",
                 claim_seconds: float = 120.0, review_seconds: float = 5.0, max_body: int = 1_000_000,
                 print_fn: Callable[[str], None] | None = None, teachers: list[str] | None = None, overlap: int = 1,
                 reviewer: str | None = None, show_model_explanation: bool = True, **ignored: Any):
        check_ignored("web", ignored)
        names = [str(t) for t in (teachers or [])]
        bad = [t for t in names if not t or not t.replace("-", "").replace("_", "").isalnum()]
        if bad or len(set(names)) != len(names):
            raise ConfigError(f"oracle.teachers={names}: give distinct names of letters, digits, - and _")
        if int(overlap) < 1 or int(overlap) > max(1, len(names)):
            raise ConfigError(f"oracle.overlap={overlap}: each question can be answered by 1 to {max(1, len(names))} "
                              "teachers (list them in oracle.teachers=[alice,bob])")
        if reviewer is not None and reviewer not in names:
            raise ConfigError(f"oracle.reviewer={reviewer} is not one of oracle.teachers={names}")
        self.teachers = names
        reviewer = reviewer or (names[0] if names else None)
        if not token and not is_loopback(host):
            raise ConfigError(f"oracle.host={host} without a token would let anyone on the network answer (and "
                              "read the data): keep oracle.token=true, or bind oracle.host=127.0.0.1")
        if not 0 <= int(port) < 65536:
            raise ConfigError(f"oracle.port={port}: give 0 (any free port) or 1..65535")
        self.host, self.port, self.use_token, self.token_env = host, int(port), bool(token), token_env
        self.max_body = int(max_body)
        self.session = WebSession(claim_seconds=claim_seconds, review_seconds=review_seconds, overlap=int(overlap),
                                  reviewer=reviewer, hide_model=not show_model_explanation)
        self.print_fn = print_fn
        self.token: str | None = None
        self.url: str | None = None
        self.urls: dict[str, str] = {}  # each named teacher's link
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def kinds(self) -> tuple[str, ...]:
        return registered()

    # -------------------------------------------------------------- lifecycle
    def start(self, ctx: OracleContext) -> None:
        """Start serving (once per process); reuse the run's address and token when resuming."""
        if self._server is not None:
            return
        import uvicorn

        from exil.common.web.app import LOOPBACK, build_app

        self.session.ctx = ctx
        state_path = Path(ctx.out_dir) / "web.json"
        saved = _read_private(state_path)
        port = self.port or int(saved.get("port", 0))
        token = None
        if self.use_token:
            token = os.environ.get(self.token_env) or saved.get("token") or secrets.token_urlsafe(24)
        saved_team = saved.get("teachers") or {}
        team = {name: saved_team.get(name) or secrets.token_urlsafe(24) for name in self.teachers}
        sock = _bind(self.host, port)
        if sock is None:  # the saved port is taken: any free one
            sock = _bind(self.host, 0)
        port = sock.getsockname()[1]
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
        urls = {name: f"http://{shown}:{port}/?token={t}" for name, t in team.items()}
        url = next(iter(urls.values()), url)  # a team has no unnamed link
        shown_token = next(iter(team.values()), token)  # a team has no unnamed link: the first teacher's
        _write_private(state_path, {"port": port, **({"token": shown_token} if shown_token else {}), "url": url,
                                    **({"teachers": team, "urls": urls} if team else {})})
        hosts = LOOPBACK if is_loopback(self.host) else None
        title = f"exil · {Path(ctx.out_dir).parent.name}"
        app = build_app(self.session, token, title=title, hosts=hosts, max_body=self.max_body,
                        teachers=team or None)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", ws="none")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name="exil-web")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        self.token, self.port, self.url, self.urls = token, port, url, urls
        links = urls or {"": url}
        for name, link in links.items():
            who = f" for {name}" if name else ""
            if self.print_fn is not None:
                self.print_fn(f"exil teacher page{who}: {link}  (open it in a browser; the run waits for answers)")
            else:
                announce(link, f"http://{shown}:{port}/", state_path, who)

    def close(self) -> None:
        if self._server is not None:
            if self.session.waiting:  # open pages get the run's last word ("finished", "stopped") before it goes
                time.sleep(0.1 + 0.03)
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None

    # ------------------------------------------------------------ live oracle
    def offer(self, round: int, questions: list[Question], ctx: OracleContext, desk: Any,
              answered: list[tuple[Question, Any]] = ()) -> None:
        self.start(ctx)
        self.session.offer(round, questions, ctx, desk, answered)

    def settle(self, round: int, desk: Any) -> None:
        self.session.settle(round)

    def status(self, info: dict[str, Any]) -> None:
        self.session.set_status(info)

    def answer(self, question: Question, ctx: OracleContext) -> Any:
        raise NotImplementedError("the web oracle is live: the asker offers it questions (Asker.many)")


def announce(url: str, address: str, state_path: Path, who: str = "") -> None:
    """Say where the page is without letting its token reach a log: the link with the token goes to the
    controlling terminal (``/dev/tty``), which no logger captures (W&B's console capture, a SLURM output file,
    Hydra's job log read stdout and stderr); stderr gets the address without the token and where the full link
    is kept (``web.json``, readable by its owner only)."""
    said = False
    try:
        with open("/dev/tty", "w") as tty:
            tty.write(f"exil teacher page{who}: {url}  (open it in a browser; the run waits for your answers)\n")
            said = True
    except OSError:  # no controlling terminal (a batch job, a service)
        pass
    where = "printed on your terminal above; also" if said else "with its token"
    print(f"exil teacher page{who}: {address}  (the link {where} in {state_path}, readable only by you)",
          file=sys.stderr, flush=True)


def _bind(host: str, port: int) -> socket.socket | None:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted sockets inherit it: no 40 ms Nagle stall
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        if port == 0:
            raise ConfigError(f"oracle.host={host}: cannot bind that address") from None
        return None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _read_private(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Write a file only its owner can read (it holds the page's token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)
