"""The web teacher's HTTP API and page (Starlette, served by uvicorn in the loop's process).

Every request needs the run's token: the printed URL carries it (``/?token=…``), the first visit turns it into
an HttpOnly, SameSite=Strict cookie named after the run (two runs on one machine never share one), which
serves the page and its images. The API takes the token only as the ``X-Exil-Token`` header, which the page
sends and another site cannot (a cross-origin request with a custom header needs a CORS preflight, which this
server never grants). A state-changing request must also be JSON (``Content-Type: application/json``) and,
when the browser says where it comes from (``Origin``, ``Sec-Fetch-Site``), come from this page's own origin:
a page on another port of the same machine cannot answer, revise or hold a round (cross-site request
forgery). Every response forbids framing (``Content-Security-Policy: frame-ancestors 'none'``) and loads
scripts only from this server. On a loopback address the ``Host`` header must name it too (no DNS
rebinding). Bodies over ``max_body`` bytes are refused; a body that is not JSON, is nested deeper than
:data:`MAX_DEPTH` or has the wrong shape is a 400 with the reason. Long polls (``/api/state?since=``) wait on
the event loop, not in a thread, so open pages never starve other requests. Only the package's own static
files, registered kinds' view modules and in-memory images are served.

=========================  ===================================================================
``GET /``                  the page
``GET /api/state``         the loop's stage, the round's questions, the answers given (long poll: ``since``)
``POST /api/next``         claim the next question for this tab (``{keep: id}``: the one it shows, if open)
``GET /api/question/ID``   one question (with its answer, to revise it)
``POST /api/answer``       ``{id, answer, revise, seconds}`` → saved (journal) · 422 invalid · 409 taken · 410 in use
``POST /api/preview``      ``{id, data}`` → the kind's live feedback (ALICE: parsed parts)
``POST /api/review``       ``{action: train | hold}`` at the end of a round
=========================  ===================================================================
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from exil.common.errors import ExilError
from exil.common.oracle.asker import AnswerInUse, AnswerTaken
from exil.common.oracle.kinds import kind_of
from exil.common.oracle.question import InvalidAnswer
from exil.common.web.session import WebSession

STATIC = Path(__file__).parent / "static"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
#: deepest nesting of a request's JSON body (answers are at most a few levels deep)
MAX_DEPTH = 32
#: headers of every response: no framing (clickjacking), scripts and connections to this server only
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def cookie_name(token: str) -> str:
    """The page's cookie, named after the run's token: cookies ignore ports, so runs on one machine that
    shared a name would overwrite each other's (opening run B would lock run A's tab out)."""
    return "exil_" + hashlib.sha256(token.encode()).hexdigest()[:16]


class TokenGate:
    """ASGI middleware: the token on every request (as the header for the API), same-origin JSON for every
    change, a sane Host on loopback, bounded bodies, and the security headers on every response."""

    def __init__(self, app, token: str | None, hosts: set[str] | None, max_body: int,
                 teachers: dict[str, str] | None = None):
        self.app, self.token, self.hosts, self.max_body = app, token, hosts, max_body
        #: token → the named teacher it belongs to (None: the run's one teacher)
        self.tokens: dict[str, str | None] = {t: name for name, t in (teachers or {}).items()}
        if token is not None and not self.tokens:
            self.tokens[token] = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def secured(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in SECURITY_HEADERS.items():
                    headers[k] = v
            await send(message)

        req = Request(scope)
        refused = self._refusal(req)
        if refused is not None:
            return await refused(scope, receive, secured)
        return await self.app(scope, _bounded(receive, self.max_body), secured)

    def _match(self, given: str | None) -> str | None:
        """The token of this run that ``given`` is (compared in constant time), else None."""
        if not given:
            return None
        found = None
        for t in self.tokens:
            if secrets.compare_digest(given, t):
                found = t
        return found

    def _refusal(self, req: Request) -> Response | None:
        """The response that refuses ``req``, or None when it may go on."""
        path = req.url.path
        if self.hosts is not None and req.headers.get("host", "").rsplit(":", 1)[0] not in self.hosts:
            return JSONResponse({"error": "unknown host"}, status_code=421)
        if self.tokens:
            query = self._match(req.query_params.get("token"))
            if path == "/" and query is not None:
                # the token leaves the address bar; a named teacher's name stays in it, so that a tab of theirs
                # is theirs again after a reload on a machine several teachers share (one browser, several cookies)
                name = self.tokens[query]
                resp = RedirectResponse("/" if name is None else f"/?{urlencode({'teacher': name})}", status_code=303)
                resp.set_cookie(cookie_name(query), query, httponly=True, samesite="strict", path="/")
                return resp
            # the API: the header only (a cookie goes with any site's request; the header only with the page's)
            given = self._match(req.headers.get("x-exil-token"))
            if given is None and not path.startswith("/api/"):
                held = [t for t in self.tokens if secrets.compare_digest(req.cookies.get(cookie_name(t), ""), t)]
                wanted = req.query_params.get("teacher")
                if wanted is not None:
                    held = [t for t in held if self.tokens[t] == wanted]
                if path == "/" and len(held) > 1:
                    return _whose(sorted(str(self.tokens[t]) for t in held))
                given = held[0] if held else None
            if given is None:
                return _forbidden(path)
            req.scope.setdefault("state", {}).update(token=given, teacher=self.tokens[given])
        if req.method in STATE_CHANGING:
            why = cross_site(req)
            if why:
                return JSONResponse({"error": why}, status_code=403)
        if int(req.headers.get("content-length") or 0) > self.max_body:
            return JSONResponse({"error": f"the request is larger than {self.max_body} bytes"}, status_code=413)
        return None


def cross_site(req: Request) -> str | None:
    """Why a state-changing request may come from another site's page (None: it comes from this page): it
    must be JSON, carry the page's own header, and — where the browser names its origin — come from here."""
    if req.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return "a change must be sent as JSON (Content-Type: application/json)"
    if "x-exil-tab" not in req.headers and "x-exil-token" not in req.headers:
        return "a change must come from the teacher page (its X-Exil-Tab header is missing)"
    site = req.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"a change must come from this page, not from another site ({site})"
    origin = req.headers.get("origin")
    if origin is not None and origin != f"{req.url.scheme}://{req.headers.get('host', '')}":
        return f"a change must come from this page's origin, not {origin[:100]}"
    return None


class LongPolls:
    """Long polls that wait on the event loop: ``await polls.wait(since, timeout)`` returns when the session's
    version moves past ``since`` (then ``coalesce`` seconds later), a claim lapses, or ``timeout`` seconds
    pass — holding no thread, so any number of open pages leave the server's threads to the requests that need
    them."""

    def __init__(self, session: WebSession, coalesce: float = 0.03):
        self.session = session
        self.loop: asyncio.AbstractEventLoop | None = None
        self.futures: set[asyncio.Future] = set()
        #: seconds a woken poll waits before it answers: one answer moves the version two or three times (the
        #: answer, the next claim), and many teachers answer at once; every page then fetches the state once for
        #: all of them, not once per change (50 teachers: each answer woke 50 pages two or three times)
        self.coalesce = coalesce

    def _attach(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
            self.session.listeners.append(self._notify)
        return self.loop

    def _notify(self) -> None:  # any thread, under the session's lock: never blocks
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the server's loop is closed
            pass

    def _wake(self) -> None:
        for f in self.futures:
            if not f.done():
                f.set_result(None)
        self.futures.clear()

    async def wait(self, since: int, timeout: float) -> None:
        loop = self._attach()
        deadline = loop.time() + timeout
        while self.session.version == since:
            next_lapse = self.session.release_lapsed()
            left = deadline - loop.time()
            if self.session.version != since or left <= 0:
                return
            if next_lapse is not None:
                left = min(left, max(0.01, next_lapse - time.monotonic()))
            fut = loop.create_future()
            self.futures.add(fut)
            if self.session.version != since:  # moved between the check and the registration
                return
            self.session.waiting += 1  # only the event loop's thread touches it
            try:
                await asyncio.wait({fut}, timeout=left)
                if fut.done() and self.coalesce > 0:  # woken: let the changes of the same moment land first
                    await asyncio.sleep(self.coalesce)
            finally:
                self.session.waiting -= 1
                self.futures.discard(fut)


def _forbidden(path: str) -> Response:
    if path.startswith("/api/"):
        return JSONResponse({"error": "this run's token is missing or wrong (the API takes it as the X-Exil-Token "
                                      "header): open the URL exil printed"}, status_code=403)
    return HTMLResponse("<!doctype html><title>exil</title><p>This page needs the run's token: open the URL "
                        "that <code>exil</code> printed when the run started (it ends in <code>?token=…</code>).",
                        status_code=403)


def _whose(names: list[str]) -> Response:
    """The page asked for without a teacher's name in a browser where several teachers signed in."""
    links = ", ".join(f'<a href="/?{_escape(urlencode({"teacher": n}))}">{_escape(n)}</a>' for n in names)
    return HTMLResponse("<!doctype html><title>exil</title><p>Several teachers of this run signed in in this browser "
                        f"({links}): open your own link, or the page of your name.", status_code=409)


def _bounded(receive, limit: int):
    seen = 0

    async def wrapped():
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise ExilError("request body too large")
        return message

    return wrapped


def build_app(session: WebSession, token: str | None, title: str = "exil", hosts: set[str] | None = None,
              max_body: int = 1_000_000, long_poll: float = 20.0, teachers: dict[str, str] | None = None):
    """The ASGI app of one run's teacher page (module docstring). ``teachers``: name → token of each named
    teacher (each answers with their own link; the journal records who answered)."""

    polls = LongPolls(session)

    def teacher_of(req: Request) -> str | None:
        return getattr(req.state, "teacher", None)

    def tab_of(req: Request) -> str:
        tab = req.headers.get("x-exil-tab", "")[:64] or "anonymous"
        who = teacher_of(req)
        return f"{who}/{tab}" if who else tab

    def page(req: Request) -> Response:
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        who = teacher_of(req)
        shown = f"{title} · {who}" if who else title
        html = html.replace("{{TITLE}}", _escape(shown)).replace("{{TOKEN}}", getattr(req.state, "token", None) or "")
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    def view(req: Request) -> Response:
        try:
            path = kind_of(req.path_params["kind"]).view
        except ExilError:
            path = None
        if path is None or not Path(path).is_file():
            return JSONResponse({"error": "no view for this kind"}, status_code=404)
        return FileResponse(path, media_type="text/javascript")

    def media(req: Request) -> Response:
        data = session.media.get(req.path_params["key"])
        if data is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    async def state(req: Request) -> Response:
        tab = tab_of(req)
        try:
            since = int(req.query_params.get("since", "-1"))
            wait = float(req.query_params.get("wait", long_poll))
        except ValueError:
            return JSONResponse({"error": "since must be a whole number and wait a number of seconds"},
                                status_code=400)
        if not math.isfinite(wait) or wait < 0:
            return JSONResponse({"error": "wait must be a number of seconds ≥ 0"}, status_code=400)
        session.touch(tab)
        if since == session.version:
            await polls.wait(since, timeout=min(long_poll, wait))
        return JSONResponse(session.state_json(tab, teacher_of(req)))

    async def next_question(req: Request) -> Response:
        body = await _json(req)
        if isinstance(body, BadBody):
            return body.response()
        keep = body.get("keep") if isinstance(body, dict) else None
        who = teacher_of(req)
        e = session.next_for(tab_of(req), keep=str(keep) if keep else None, teacher=who)
        return JSONResponse({"question": session.question_json(e) if e is not None else None,
                             "state": session.state_json(tab_of(req), who)})

    def release(req: Request) -> Response:
        session.release(tab_of(req))  # the page is going away (pagehide): its question is free for other tabs
        return JSONResponse({"ok": True})

    def one(req: Request) -> Response:
        e = session.entry(req.path_params["qid"])
        if e is None:
            return JSONResponse({"error": "this question is no longer open (the run has moved on)"}, status_code=404)
        return JSONResponse({"question": session.question_json(e)})

    async def answer(req: Request) -> Response:
        body = await _json(req)
        if isinstance(body, BadBody):
            return body.response()
        if not isinstance(body, dict) or "id" not in body or "answer" not in body:
            return JSONResponse({"error": "send {id, answer}"}, status_code=400)
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_answer, body, tab_of(req), teacher_of(req))

    def _answer(body: dict[str, Any], tab: str, who: str | None) -> Response:
        qid, revise = str(body["id"]), bool(body.get("revise"))
        seconds = body.get("seconds")
        try:
            e = session.submit(qid, body["answer"], revise, teacher=who, seconds=seconds)
        except KeyError:
            return JSONResponse({"error": "this question is no longer open (the run has moved on)"}, status_code=404)
        except InvalidAnswer as err:
            return JSONResponse({"error": str(err)}, status_code=422)
        except AnswerTaken as err:
            nxt = session.next_for(tab, teacher=who)
            return JSONResponse({"error": str(err), "taken": True,
                                 "next": session.question_json(nxt) if nxt else None}, status_code=409)
        except AnswerInUse as err:
            return JSONResponse({"error": str(err)}, status_code=410)
        nxt = None if revise else session.next_for(tab, teacher=who)
        return JSONResponse({"saved": True, "id": qid, "summary": e.summary,
                             "next": session.question_json(nxt) if nxt else None})

    async def preview(req: Request) -> Response:
        body = await _json(req)
        if isinstance(body, BadBody):
            return body.response()
        if not isinstance(body, dict) or "id" not in body:
            return JSONResponse({"error": "send {id, data}"}, status_code=400)
        try:
            return JSONResponse(session.preview(str(body.get("id")), body.get("data")))
        except KeyError:
            return JSONResponse({"error": "this question is no longer open"}, status_code=404)

    async def review(req: Request) -> Response:
        body = await _json(req)
        if isinstance(body, BadBody):
            return body.response()
        action = body.get("action") if isinstance(body, dict) else None
        if action not in ("train", "hold"):
            return JSONResponse({"error": "action must be train or hold"}, status_code=400)
        session.set_review(action)
        return JSONResponse({"ok": True})

    routes = [
        Route("/", page), Mount("/static", StaticFiles(directory=STATIC)), Route("/views/{kind}.js", view),
        Route("/media/{key}.png", media), Route("/api/state", state), Route("/api/next", next_question,
                                                                          methods=["POST"]),
        Route("/api/question/{qid:path}", one), Route("/api/answer", answer, methods=["POST"]),
        Route("/api/preview", preview, methods=["POST"]), Route("/api/review", review, methods=["POST"]),
        Route("/api/release", release, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    return TokenGate(app, token, hosts, max_body, teachers=teachers)


class BadBody:
    """A request body that cannot be used: why, as a 400 (413 when too large)."""

    def __init__(self, why: str, status: int = 400):
        self.why, self.status = why, status

    def response(self) -> Response:
        return JSONResponse({"error": self.why}, status_code=self.status)


async def _json(req: Request) -> Any:
    """The request's JSON body (None when empty), or a :class:`BadBody` saying what is wrong with it."""
    try:
        raw = await req.body()
    except ExilError:
        return BadBody("the request is too large", 413)
    try:
        value = json.loads(raw or b"null")
    except RecursionError:
        return BadBody(f"the body is nested too deeply (at most {MAX_DEPTH} levels)")
    except ValueError as e:
        return BadBody(f"the body is not JSON ({str(e)[:80]})")
    if _depth(value) > MAX_DEPTH:
        return BadBody(f"the body is nested too deeply (at most {MAX_DEPTH} levels)")
    return value


def _depth(value: Any) -> int:
    """The nesting depth of a parsed JSON value (iterative: a deep value cannot exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            deepest = max(deepest, d)
            if d <= MAX_DEPTH:
                stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")

