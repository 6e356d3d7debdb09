"""An LLM as the teacher of explanations: any OpenAI-compatible chat endpoint (``POST {base_url}/chat/completions``).

:class:`ChatClient` sends chat requests over one :class:`httpx.Client` (thread-safe, kept-alive connections,
proxies from the environment), runs at most ``concurrency`` requests at a time, and keeps every completed
answer in a request cache (JSONL, keyed by the SHA-256 of model + messages) so that a request is never paid
for twice — not even one whose question was cut off by a kill before its answer reached the journal. A line
cut off by a kill mid-write is skipped when the cache is read.

Retry and deadline policy (retries through :mod:`tenacity`):

* **Deadline.** Each attempt has ``timeout`` seconds in all — waiting for a connection, connecting,
  sending, waiting for the reply and reading its status line, headers and body (httpx's own timeouts are per
  operation). Every read, write, connect and TLS handshake on the attempt's connection waits at most the time
  left until the attempt's deadline, and one that would begin after it fails at once (the connections come
  from an httpcore network backend that reads each thread's deadline, also under a proxy from the
  environment): a server that trickles its status line, its headers or its body a byte at a time fails the
  attempt after about ``timeout`` s. The host's name is looked up within the time left too (in a thread of its
  own: no timeout of the standard library bounds ``getaddrinfo``), so a resolver that hangs fails the attempt.
* **One deadline per request**: ``deadline`` seconds (default 180) across all its attempts and the waits
  between them. No wait begins that would end past it, and an attempt that begins near it gets only the time
  left; when it is spent the run stops with an ExilError that says so and names ``oracle.client.deadline``.
  (Without it, the defaults — 6 attempts of 60 s, 31 s of backoff — would let one request take 391 s.)
* **Transient failures are retried**: HTTP 408, 409, 425, 429 and 5xx; timeouts; refused, reset or broken
  connections; protocol errors (a bad status line, a body cut off before its ``Content-Length``); and
  invalid replies — a body that is not JSON, or not an object whose ``choices[0].message.content`` is a
  string (``null`` content is read as ``""``, which the oracle asks again). At most ``retries`` further
  attempts; the wait before retry ``a`` (1, 2, ...) is ``min(backoff · 2^(a-1), max_backoff)`` seconds,
  or the server's ``Retry-After`` (on 429 and 503) if that is longer, still capped at ``max_backoff``.
  When the retries (or the request's deadline) are spent the run stops with an
  :class:`~exil.common.errors.ExilError`; resuming it asks again, the answers so far are kept.
* **Anything else fails at once** with an ExilError that says what to fix: HTTP 400, 401, 403, 404,
  422, ... (and redirects: ``base_url`` is then wrong), an unsupported URL scheme.
* **Secrets are never printed**: every error message and every log line goes through :func:`redact`,
  which hides the API key's value, ``Bearer ...`` credentials, ``sk-...`` tokens and credentials in URLs;
  reply bodies quoted in errors are cut to :data:`SNIPPET` characters. A credential in ``base_url`` is
  redacted wherever the config is written (:mod:`exil.common.config_secrets`); a resumed run, whose config
  comes from its journal, takes ``base_url`` whole from ``$OPENAI_BASE_URL`` (``base_url_env``).

:class:`LLMOracle` answers ``explain_label`` (XAL): for an item and its label it asks, concurrently,
for an explanation of each class — the gold label's (reasonable) and the others' (unreasonable) — with
the per-task prompt template (``sentiment``, ``nli``, ``paraphrase``, in the shape of the prompts of
Luo et al. 2024's appendix, or your own); ``label`` questions go to its ``labels`` oracle (simulated
gold labels, as in the paper's experiments, or a person), and so does the label of an ``explain_label``
question that asks it too. Answers go through the Asker like any other:
journaled before use, so a resumed run reuses them. The API key is read from the environment variable
``api_key_env`` (never stored in the config or the journal).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping, Sequence

import httpcore
import httpx
import tenacity

from exil.common.config_secrets import REDACTED, URL_SECRET_PATTERNS, redact_url
from exil.common.errors import ConfigError, ExilError
from exil.common.oracle.base import SIMULATED_SETTINGS, Oracle
from exil.common.oracle.question import OracleContext, Question

Messages = list[dict[str, str]]
log = logging.getLogger(__name__)

TEMPLATES = {
    "sentiment": "Text: \"{text}\"\nThe sentiment of this text is {label}. "
                 "Explain in one short sentence why the text is {label}.",
    "nli": "Premise: \"{text}\"\nHypothesis: \"{text_b}\"\nThe relation between the premise and the hypothesis "
           "is {label}. Explain in one short sentence why it is {label}.",
    "paraphrase": "Sentence 1: \"{text}\"\nSentence 2: \"{text_b}\"\nThe two sentences are {label}. "
                  "Explain in one short sentence why they are {label}.",
}
SYSTEM = "You explain labels of texts in one short sentence."
RETRY_STATUS = {408, 409, 425, 429} | set(range(500, 600))
RETRY_AFTER_STATUS = {429, 503}
SNIPPET = 300  # characters of a reply body quoted in an error
MAX_REPLY_BYTES = 16 << 20  # a chat completion is far smaller; a larger body is an invalid reply
MAX_ERROR_BYTES = 64 << 10  # of an error reply, only the start is read (to quote it)

# ------------------------------------------------------------------ secrets
_SECRET_PATTERNS = (
    (re.compile(r"(?i)\bbearer\s+[^\s\"',;]+"), "Bearer [redacted]"),
    (re.compile(r"(?i)\bbasic\s+[A-Za-z0-9+/]{8,}={0,2}"), "Basic [redacted]"),
    (re.compile(r"sk-[A-Za-z0-9_\-]{8,}"), "[redacted]"),
    *URL_SECRET_PATTERNS,  # keys in URL queries, passwords in URLs (also what a written config hides)
)
_known_secrets: frozenset[str] = frozenset()  # the API keys clients have sent (replaced whole: thread-safe reads)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with the given secret values, every API key a client has sent, ``Bearer ...`` and ``Basic ...``
    credentials, ``sk-...`` tokens, keys in URL queries and passwords in URLs replaced by ``[redacted]``."""
    text = str(text)
    for s in sorted({s for s in (*secrets, *_known_secrets) if s}, key=len, reverse=True):
        text = text.replace(s, "[redacted]")
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text


def _snippet(body: bytes | str) -> str:
    """The start of a reply body for an error message: redacted, then cut to :data:`SNIPPET` characters."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    text = redact(text.strip())
    return text if len(text) <= SNIPPET else text[:SNIPPET] + f"... ({len(text)} characters)"


class _RedactingFilter(logging.Filter):
    """Log records of httpx/httpcore (request URLs) pass through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_log_setup = threading.Lock()
_log_ready = False


def _setup_http_logging() -> None:
    """httpx logs every request at INFO (urllib did not): quiet that unless the user configured the logger,
    and redact what httpx and httpcore log."""
    global _log_ready
    with _log_setup:
        if _log_ready:
            return
        for name in ("httpx", "httpcore"):
            logger = logging.getLogger(name)
            logger.addFilter(_RedactingFilter())
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.WARNING)
        _log_ready = True


# ------------------------------------------------------------------ failures
class _Transient(Exception):
    """A failed attempt worth retrying; ``what`` says what happened, ``hint`` what to do if it keeps happening."""

    def __init__(self, what: str, hint: str, retry_after: float | None = None):
        super().__init__(what)
        self.what, self.hint, self.retry_after = what, hint, retry_after


class InvalidReply(ValueError):
    """A reply that is not an OpenAI chat completion; the message says what is wrong with it."""


_HINT_INVALID = ("check that oracle.client.base_url is an OpenAI-compatible API root (e.g. https://api.openai.com/v1) "
                 "and oracle.client.model a chat model")
_HINT_NETWORK = "check that the server is up and oracle.client.base_url is right"
_HINT_BUSY = "the server is busy or failing; try again later, or lower oracle.client.concurrency"
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def parse_reply(raw: bytes) -> str:
    """The assistant's text in a chat completion body (``null`` content: ``""``); :class:`InvalidReply` if the
    body is not JSON, or not an object with ``choices[0].message.content`` a string."""
    try:
        reply = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidReply(f"the body is not UTF-8 text (body: {_snippet(raw)})") from None
    except json.JSONDecodeError as e:
        raise InvalidReply(f"the body is not JSON ({e.msg} at character {e.pos}; body: {_snippet(raw)})") from None
    if not isinstance(reply, dict):
        raise InvalidReply(f"the body is {_json_type(reply)}, not a JSON object (body: {_snippet(raw)})")
    choices = reply.get("choices")
    if "choices" not in reply:
        what = "an error instead of `choices`" if "error" in reply else "no `choices`"
        raise InvalidReply(f"the body has {what} (body: {_snippet(raw)})")
    if not isinstance(choices, list) or not choices:
        what = "empty" if isinstance(choices, list) else f"{_json_type(choices)}, not an array"
        raise InvalidReply(f"`choices` is {what} (body: {_snippet(raw)})")
    first = choices[0]
    if not isinstance(first, dict):
        raise InvalidReply(f"`choices[0]` is {_json_type(first)}, not an object (body: {_snippet(raw)})")
    message = first.get("message")
    if not isinstance(message, dict):
        what = "missing" if "message" not in first else f"{_json_type(message)}, not an object"
        raise InvalidReply(f"`choices[0].message` is {what} (body: {_snippet(raw)})")
    if "content" not in message:
        raise InvalidReply(f"`choices[0].message.content` is missing (body: {_snippet(raw)})")
    content = message["content"]
    if content is None:
        return ""
    if not isinstance(content, str):
        raise InvalidReply(f"`choices[0].message.content` is {_json_type(content)}, not a string "
                           f"(body: {_snippet(raw)})")
    return content


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(when.timestamp() - time.time(), 0.0)


class _TimeLeft(dict):
    """httpx's per-operation timeouts (``connect``, ``write``, ``pool``, ``read``), each looked up as the time
    left until the attempt's deadline when an operation begins. Its stored values are the whole ``timeout``,
    so that a copy of it still bounds each operation."""

    def __init__(self, deadline: float, timeout: float):
        super().__init__(connect=timeout, read=timeout, write=timeout, pool=timeout)
        self.deadline = deadline

    def _left(self) -> float:
        return max(self.deadline - time.monotonic(), 0.001)

    def get(self, key: str, default: Any = None) -> Any:
        return self._left() if key in self else default

    def __getitem__(self, key: str) -> float:
        super().__getitem__(key)  # KeyError for an unknown one
        return self._left()


class _Deadline(threading.local):
    """The deadline (``time.monotonic()``) of the attempt the current thread is making, or None between attempts.
    httpx's sync client does all of a request's I/O in the thread that sends it."""

    at: float | None = None

    def bound(self, timeout: float | None, late: type[Exception]) -> float | None:
        """``timeout`` cut to the time left (``late`` raised if none is)."""
        if self.at is None:
            return timeout
        left = self.at - time.monotonic()
        if left <= 0:
            raise late("the attempt's deadline has passed")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake waits at most until the deadline of the attempt using
    it: a server that trickles its status line, its headers or its body a byte at a time is cut at the deadline,
    not one whole timeout per byte."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: _Deadline):
        self._stream, self._deadline = stream, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.bound(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.bound(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        timeout = self._deadline.bound(timeout, httpcore.ConnectTimeout)
        stream = self._stream.start_tls(ssl_context, server_hostname, timeout)
        return _DeadlineStream(stream, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend (``ConnectionPool(network_backend=...)``) whose connections are
    :class:`_DeadlineStream` objects; connecting waits at most the time left too."""

    def __init__(self, backend: httpcore.NetworkBackend, deadline: _Deadline):
        self._backend, self._deadline = backend, deadline

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        """Each address the name resolves to (looked up within the time left: :func:`_resolve`), in the resolver's
        order, until one connects — as ``socket.create_connection`` does, but bounded."""
        failed: Exception | None = None
        for address in _resolve(host, port, self._deadline.bound(timeout, httpcore.ConnectTimeout)):
            try:
                stream = self._backend.connect_tcp(address, port,
                                                   self._deadline.bound(timeout, httpcore.ConnectTimeout),
                                                   local_address=local_address, socket_options=socket_options)
                return _DeadlineStream(stream, self._deadline)
            except (httpcore.ConnectError, OSError) as e:
                failed = e
        raise failed if failed is not None else httpcore.ConnectError(f"{host} resolves to no address")

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        stream = self._backend.connect_unix_socket(path, self._deadline.bound(timeout, httpcore.ConnectTimeout),
                                                   socket_options=socket_options)
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _resolve(host: str, port: int, timeout: float | None) -> list[str]:
    """The addresses of ``host`` (an address itself as it is), looked up in a daemon thread that is waited for at
    most ``timeout`` s: ``getaddrinfo`` cannot be interrupted, so a hung lookup is left to finish on its own and
    the attempt fails with :class:`httpcore.ConnectTimeout` (a retry, or the request's deadline, follows)."""
    import ipaddress
    import socket

    try:
        ipaddress.ip_address(host.strip("[]"))
        return [host.strip("[]")]
    except ValueError:
        pass
    found: dict[str, Any] = {}

    def lookup() -> None:
        try:
            found["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            found["error"] = e

    worker = threading.Thread(target=lookup, name=f"exil-dns-{host}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise httpcore.ConnectTimeout(f"looking up {host} took longer than the attempt's {timeout:.1f} s")
    if "error" in found:
        raise httpcore.ConnectError(f"cannot look up {host}: {found['error']}")
    return list(dict.fromkeys(str(info[4][0]) for info in found["infos"]))


def _bound_by_deadline(client: httpx.Client, deadline: _Deadline) -> bool:
    """Put :class:`_DeadlineBackend` under every transport of ``client``: its own and those mounted for the
    environment's proxies (``HTTPS_PROXY``, ...: an HTTP or SOCKS proxy's pool is an httpcore
    ``ConnectionPool`` too). httpx does not pass a network backend through, so each pool's is wrapped in place;
    False (nothing changed) if this httpx or httpcore keeps them elsewhere."""
    pools = []
    for transport in (getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()):
        if transport is None:
            continue
        pool = getattr(transport, "_pool", None)
        if not isinstance(getattr(pool, "_network_backend", None), httpcore.NetworkBackend):
            return False
        pools.append(pool)
    if not pools:
        return False
    for pool in pools:
        if not isinstance(pool._network_backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(pool._network_backend, deadline)
    return True


class ChatClient:
    """OpenAI-compatible chat completions with a deadline, retries, bounded concurrency and a request cache
    (the module docstring has the retry and deadline policy).

    Args:
        base_url: the API root, e.g. ``https://api.openai.com/v1`` or a local server's ``http://127.0.0.1:8000/v1``.
        model: the model name sent with each request.
        api_key_env: the environment variable holding the key (unset: no Authorization header).
        timeout: seconds per attempt, in all (connecting, sending, waiting, reading the reply).
        deadline: seconds per request, in all: its attempts and the waits between them (default 180 s; without
            it the other defaults would allow 6 attempts of 60 s and 31 s of waits, 391 s).
        retries: further attempts after a transient failure (as many as fit before ``deadline``).
        backoff, max_backoff: the wait before retry ``a`` is ``min(backoff · 2^(a-1), max_backoff)`` seconds
            (or a longer ``Retry-After``, still capped at ``max_backoff``).
        concurrency: requests in flight at most (in :meth:`complete_many`).
        temperature, max_tokens: sent with each request.
        cache_path: the request cache (JSONL); ``None`` until the oracle sets it to the run's folder.
        base_url_env: the environment variable a ``base_url`` whose credentials were redacted (``[redacted]``,
            as a resumed run's config from its journal has it: :mod:`exil.common.config_secrets`) is taken from,
            whole, when it holds the same URL with its credentials.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0,
                 retries: int = 5, backoff: float = 1.0, max_backoff: float = 30.0, concurrency: int = 4,
                 temperature: float = 0.0, max_tokens: int = 128, cache_path: str | Path | None = None,
                 deadline: float = 180.0, base_url_env: str | None = "OPENAI_BASE_URL"):
        if concurrency < 1 or retries < 0 or timeout <= 0 or backoff < 0 or max_backoff < 0:
            raise ConfigError(f"llm client: concurrency >= 1, retries >= 0, timeout > 0 and backoff, max_backoff "
                              f">= 0 are needed, got {concurrency}, {retries}, {timeout}, {backoff}, {max_backoff}")
        if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not deadline > 0:
            raise ConfigError(f"llm client: deadline (oracle.client.deadline, seconds per request across its "
                              f"retries) must be a number > 0, got {deadline!r}")
        base_url = self._with_credentials(str(base_url), base_url_env)
        self.url = base_url.rstrip("/") + "/chat/completions"
        try:
            scheme = httpx.URL(self.url).scheme
        except (httpx.InvalidURL, TypeError, ValueError) as e:
            raise ConfigError(f"llm client: base_url {redact(base_url)!r} is not a URL ({redact(str(e))})") from None
        if scheme not in ("http", "https"):
            raise ConfigError(f"llm client: base_url {redact(base_url)!r} must start with http:// or https://")
        self.model, self.api_key_env, self.timeout, self.deadline = model, api_key_env, float(timeout), float(deadline)
        self.base_url_env = base_url_env
        self._deadline = _Deadline()  # the attempt each thread is making (read by the connections' I/O)
        self.retries, self.backoff, self.max_backoff, self.concurrency = retries, backoff, max_backoff, concurrency
        self.temperature, self.max_tokens = temperature, max_tokens
        self.requests = 0  # HTTP requests sent (retries included)
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._cache: dict[str, str] = {}
        self._cache_newline = False  # the cache file ends in a cut-off line: start the next row on a new line
        self.cache_path: Path | None = None
        if cache_path is not None:
            self.use_cache(cache_path)

    @staticmethod
    def _with_credentials(base_url: str, env: str | None) -> str:
        """``base_url``, or, if its credentials were redacted, the URL in ``$env`` that redacts to it."""
        if REDACTED not in base_url:
            return base_url
        given = os.environ.get(env, "").strip() if env else ""
        if given and redact_url(given).rstrip("/") == base_url.rstrip("/"):
            return given
        if env:
            fix = (f"${env} holds another URL" if given else f"${env} is not set") + f"; set ${env} to the whole URL"
        else:
            fix = "oracle.client.base_url_env is null; name a variable that holds the whole URL"
        raise ConfigError(f"llm client: base_url {base_url!r} has a redacted credential (a run's config is written, "
                          f"and read back on resume, without one) and {fix}, credential included")

    # --------------------------------------------------------------- cache
    def use_cache(self, path: str | Path) -> None:
        """Read (and from now on append to) the request cache at ``path``. Lines that are not a cache row
        (the last one cut off by a kill mid-write) are skipped."""
        self.cache_path = Path(path)
        if not self.cache_path.exists():
            return
        data = self.cache_path.read_bytes()
        skipped = 0
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8"))
                key, content = row["key"], row.get("content")
                if not isinstance(key, str) or not (content is None or isinstance(content, str)):
                    raise ValueError("not a cache row")
            except (ValueError, KeyError, TypeError, AttributeError):
                skipped += 1
                continue
            if content is None:
                self._cache.pop(key, None)
            else:
                self._cache[key] = content
        self._cache_newline = bool(data) and not data.endswith(b"\n")
        if skipped:
            log.warning("%s: skipped %d unreadable line(s) (cut off by a kill?); their requests are asked again",
                        self.cache_path, skipped)

    def key(self, messages: Messages) -> str:
        return hashlib.sha256(json.dumps([self.model, messages], sort_keys=True).encode()).hexdigest()

    def forget(self, messages: Messages) -> None:
        """Drop a cached answer (e.g. one the validator rejected), so that it is asked again."""
        k = self.key(messages)
        with self._lock:
            if self._cache.pop(k, None) is not None:
                self._append({"key": k, "content": None})

    def _append(self, row: dict[str, Any]) -> None:
        """One row, written whole in one call (a kill leaves at most the last line cut off). Under ``_lock``."""
        if self.cache_path is not None:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            line = json.dumps(row) + "\n"
            if self._cache_newline:
                line, self._cache_newline = "\n" + line, False
            with open(self.cache_path, "a", encoding="utf-8") as f:
                f.write(line)

    # ------------------------------------------------------------- requests
    def complete(self, messages: Messages) -> str:
        """The assistant's reply to ``messages`` (from the cache if it was asked before)."""
        k = self.key(messages)
        with self._lock:
            if k in self._cache:
                return self._cache[k]
        content = self._post(messages)
        if content.strip():  # an empty reply is not kept: the validator rejects it and it is asked again
            with self._lock:
                self._cache[k] = content
                self._append({"key": k, "content": content})
        return content

    def complete_many(self, conversations: Sequence[Messages]) -> list[str]:
        """Replies to many conversations, at most ``concurrency`` requests in flight, in the given order."""
        if len(conversations) <= 1 or self.concurrency == 1:
            return [self.complete(m) for m in conversations]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations))) as pool:
            return list(pool.map(self.complete, conversations))

    def close(self) -> None:
        """Close the connections (a later request opens new ones)."""
        with self._lock:
            client, self._http = self._http, None
        if client is not None:
            client.close()

    def __enter__(self) -> "ChatClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                _setup_http_logging()
                self._http = httpx.Client(
                    timeout=self.timeout, follow_redirects=False,
                    limits=httpx.Limits(max_connections=max(100, self.concurrency),
                                        max_keepalive_connections=self.concurrency))
                if not _bound_by_deadline(self._http, self._deadline):
                    log.warning("this httpx (%s) / httpcore (%s) keeps its connection pools elsewhere: each "
                                "read of a reply's headers waits up to oracle.client.timeout, not only until the "
                                "attempt's deadline", httpx.__version__, httpcore.__version__)
            return self._http

    def _api_key(self) -> str | None:
        key = os.environ.get(self.api_key_env, "").strip() if self.api_key_env else ""
        if not key:
            return None
        if not key.isascii() or any(c.isspace() or not c.isprintable() for c in key):
            raise ConfigError(f"the value of ${self.api_key_env} has spaces or characters that cannot be sent in "
                              "an HTTP header; set it to the API key alone")
        global _known_secrets
        if key not in _known_secrets:
            _known_secrets = _known_secrets | {key}
        return key

    def _redact(self, text: str) -> str:
        return redact(text, os.environ.get(self.api_key_env) if self.api_key_env else None)

    def _post(self, messages: Messages) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.temperature,
                           "max_tokens": self.max_tokens}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = self._api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        attempts = self.retries + 1
        end = time.monotonic() + self.deadline  # the request's deadline, across its attempts and waits
        made = [0]

        def stop(state: tenacity.RetryCallState) -> bool:  # the attempts are spent, or the wait would end past it
            return state.attempt_number >= attempts or time.monotonic() + self._wait(state) >= end

        def attempt() -> str:
            made[0] += 1
            return self._attempt(body, headers, end)

        retrying = tenacity.Retrying(stop=stop, wait=self._wait, retry=tenacity.retry_if_exception_type(_Transient),
                                     before_sleep=self._log_retry, reraise=True)
        try:
            return retrying(attempt)
        except _Transient as e:
            if made[0] < attempts:
                what = (f"the LLM endpoint {self.url} gave no answer within the request's {self.deadline:g} s "
                        f"deadline ({made[0]} attempt{'s' if made[0] != 1 else ''}); last: {e.what} ({e.hint}). "
                        "Raise oracle.client.deadline to keep trying longer")
            else:
                what = f"the LLM endpoint {self.url} failed {attempts} times; last: {e.what} ({e.hint})"
            raise ExilError(self._redact(f"{what}. The run stopped; resume it (loop.resume=<run dir>) to ask "
                                         "again — answers so far are kept")) from None

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Seconds before the next attempt: the exponential backoff, or a longer ``Retry-After``; at most
        ``max_backoff``."""
        wait = self.backoff * 2.0 ** min(state.attempt_number - 1, 60)
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return min(wait, self.max_backoff)

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.info(self._redact(f"LLM request to {self.url} failed ({getattr(exc, 'what', exc)}); retry "
                              f"{state.attempt_number} of {self.retries} in {wait:.2f} s"))

    def _attempt(self, body: bytes, headers: dict[str, str], end: float | None = None) -> str:
        """One request within the attempt's deadline (``timeout`` from now, or the request's ``end`` if sooner):
        the reply's content, or :class:`_Transient`, or an ExilError."""
        with self._lock:
            self.requests += 1
        client = self._client()
        deadline = time.monotonic() + self.timeout
        if end is not None and end < deadline:
            deadline = end
            late = f"no complete reply before the request's {self.deadline:g} s deadline"
            late_hint = "raise oracle.client.deadline if the model is this slow, or check the server"
        else:
            late = f"no complete reply within the {self.timeout:g} s timeout"
            late_hint = "raise oracle.client.timeout if the model is this slow, or check the server"
        self._deadline.at = deadline  # every read, write and connect of this thread's attempt ends by then
        try:
            with client.stream("POST", self.url, content=body, headers=headers,
                               extensions={"timeout": _TimeLeft(deadline, self.timeout)}) as resp:
                status, ok = resp.status_code, resp.is_success
                limit = MAX_REPLY_BYTES if ok else MAX_ERROR_BYTES
                chunks, size = [], 0
                if time.monotonic() > deadline:
                    raise _Transient(f"{late} (the headers came too late)", late_hint)
                for chunk in resp.iter_bytes():
                    if time.monotonic() > deadline:
                        raise _Transient(f"{late} (the body was still arriving, {size + len(chunk)} bytes so far)",
                                         late_hint)
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= limit:
                        break
                raw = b"".join(chunks)
                if ok and size >= limit:
                    raise _Transient(f"an invalid reply: the body is larger than {limit} bytes", _HINT_INVALID)
                retry_after = _retry_after(resp.headers.get("Retry-After")) if status in RETRY_AFTER_STATUS else None
                location = resp.headers.get("Location", "")
        except httpx.TimeoutException as e:
            raise _Transient(f"{late} ({type(e).__name__})", late_hint) from None
        except httpx.DecodingError as e:
            raise _Transient(f"an invalid reply: its body could not be decoded ({_snippet(str(e))})",
                             _HINT_INVALID) from None
        except (httpx.RemoteProtocolError, httpx.NetworkError, httpx.ProxyError) as e:
            raise _Transient(f"{type(e).__name__}: {_snippet(str(e) or 'no detail')}", _HINT_NETWORK) from None
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol) as e:
            what = f"{type(e).__name__}: {_snippet(str(e))}"
            raise ExilError(self._redact(f"could not send a request to the LLM endpoint {self.url} ({what}); "
                                         "check oracle.client.base_url")) from None
        finally:
            self._deadline.at = None
        if ok:
            try:
                return parse_reply(raw)
            except InvalidReply as e:
                raise _Transient(f"an invalid reply (HTTP {status}): {e}", _HINT_INVALID) from None
        what = f"HTTP {status}: {_snippet(raw) or '(no body)'}"
        if status in RETRY_STATUS:
            raise _Transient(what, _HINT_BUSY, retry_after)
        if 300 <= status < 400:
            raise ExilError(self._redact(f"the LLM endpoint {self.url} redirected the request (HTTP {status}) to "
                                         f"{location or '(no Location)'}; set oracle.client.base_url to the API "
                                         "root it points to"))
        if status in (401, 403):
            hint = f"check that ${self.api_key_env} holds a valid API key for this endpoint"
        elif status == 404:
            hint = "check oracle.client.base_url (the API root, e.g. .../v1) and oracle.client.model"
        else:
            hint = "check oracle.client.model, .temperature and .max_tokens"
        raise ExilError(self._redact(f"the LLM endpoint {self.url} refused the request ({what}); {hint}"))


class LLMOracle(Oracle):
    """Explanations from an LLM, labels from another oracle (module docstring).

    Args:
        client: a :class:`ChatClient` (``oracle.client`` in the config).
        labels: the oracle that answers ``label`` questions.
        task: ``sentiment`` | ``nli`` | ``paraphrase`` (the prompt template), unless ``template`` is given.
        template: a prompt with ``{text}`` (``{text_b}`` for pairs) and ``{label}``.
        verbalizer: class name → the word used in prompts (e.g. ``{fresh: positive, rotten: negative}``).
        system: the system message.
        max_attempts: invalid (e.g. empty) answers re-asked before the run stops.
        **simulated: the simulated teacher's settings an experiment sets for its default teacher
            (``explainer``, ...) are accepted and ignored — the LLM replaces that teacher, and ``labels`` has
            its own settings — so ``experiment=xal_rotten_tomatoes oracle=llm`` builds.
    """

    kinds = ("label", "explain_label")

    def __init__(self, client: ChatClient, labels: Oracle, task: str = "sentiment", template: str | None = None,
                 verbalizer: Mapping[str, str] | None = None, system: str = SYSTEM, max_attempts: int = 3,
                 **simulated: Any):
        unknown = sorted(set(simulated) - SIMULATED_SETTINGS)
        if unknown:
            raise ConfigError(f"oracle llm has no setting {', '.join(unknown)}")
        if template is None and task not in TEMPLATES:
            raise ConfigError(f"oracle.task={task!r}; valid: {', '.join(TEMPLATES)} (or give oracle.template)")
        self.client, self.labels = client, labels
        self.template = template or TEMPLATES[task]
        self.verbalizer = dict(verbalizer or {})
        self.system, self.max_attempts = system, max_attempts
        self._asked: dict[str, list[Messages]] = {}  # the prompts of the last answer to each question

    def conversations(self, question: Question, ctx: OracleContext) -> list[Messages]:
        """One prompt per class: why the item would have that label."""
        text = list(question.payload.get("text") or ctx.datamodule.text_of(question.item))
        fields = {"text": text[0], "text_b": text[1] if len(text) > 1 else ""}
        return [[{"role": "system", "content": self.system},
                 {"role": "user", "content": self.template.format(label=self.verbalizer.get(n, n), **fields)}]
                for n in ctx.class_names]

    def prefetch(self, questions: list[Question], ctx: OracleContext) -> None:
        """All prompts of many ``explain_label`` questions at once (``concurrency`` in flight, across items),
        into the request cache; :meth:`answer` then reads them from it, one question at a time."""
        self._open_cache(ctx)
        convs = [c for q in questions if q.kind == "explain_label" for c in self.conversations(q, ctx)]
        if convs:
            self.client.complete_many(convs)

    def _open_cache(self, ctx: OracleContext) -> None:
        if self.client.cache_path is None:
            self.client.use_cache(Path(ctx.out_dir) / "llm_requests.jsonl")

    def answer(self, question: Question, ctx: OracleContext) -> Any:
        if question.kind == "label":
            return self.labels.answer(question, ctx)
        label = question.payload.get("label")
        if label is None:  # one question for label and explanations: the label comes from ``labels``
            from exil.common.oracle.explanations import label_question

            label = self.labels.answer(label_question(question), ctx)
        self._open_cache(ctx)
        conversations = self.conversations(question, ctx)
        self._asked[question.key] = conversations
        replies = self.client.complete_many(conversations)
        return {"label": label, "explanations": replies}

    def reject(self, question: Question, answer: Any, reason: str) -> None:
        """A rejected answer's unusable replies are dropped from the request cache (empty ones never enter
        it), so that the re-ask asks the endpoint again; the usable ones are kept and not paid twice."""
        if question.kind == "label":
            self.labels.reject(question, answer, reason)
            return
        replies = answer.get("explanations", []) if isinstance(answer, dict) else []
        for conv, reply in zip(self._asked.pop(question.key, []), replies):
            if not isinstance(reply, str) or not reply.strip():
                self.client.forget(conv)

    def close(self) -> None:
        """The run is over: close the client's connections (and the ``labels`` oracle)."""
        self.client.close()
        self.labels.close()
