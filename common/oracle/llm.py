"""An LLM as the teacher of explanations: any OpenAI-compatible chat endpoint (``POST {base_url}/chat/completions``).

:class:`ChatClient` sends chat requests with a timeout, retries transient failures (HTTP 429 and 5xx,
timeouts, refused connections) with exponential backoff ``backoff · 2^attempt`` (capped at
``max_backoff``), runs at most ``concurrency`` requests at a time, and keeps every completed answer in a
request cache (JSONL, keyed by the SHA-256 of model + messages) so that a request is never paid for
twice — not even one whose question was cut off by a kill before its answer reached the journal.

:class:`LLMOracle` answers ``explain_label`` (XAL): for an item and its label it asks, concurrently,
for an explanation of each class — the gold label's (reasonable) and the others' (unreasonable) — with
the per-task prompt template (``sentiment``, ``nli``, ``paraphrase``, in the shape of the prompts of
Luo et al. 2024's appendix, or your own); ``label`` questions go to its ``labels`` oracle (simulated
gold labels, as in the paper's experiments, or a person). Answers go through the Asker like any other:
journaled before use, so a resumed run reuses them. The API key is read from the environment variable
``api_key_env`` (never stored in the config or the journal).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping, Sequence

from common.errors import ConfigError, ExilError
from common.oracle.base import Oracle, OracleContext, Question

Messages = list[dict[str, str]]

TEMPLATES = {
    "sentiment": "Text: \"{text}\"\nThe sentiment of this text is {label}. "
                 "Explain in one short sentence why the text is {label}.",
    "nli": "Premise: \"{text}\"\nHypothesis: \"{text_b}\"\nThe relation between the premise and the hypothesis "
           "is {label}. Explain in one short sentence why it is {label}.",
    "paraphrase": "Sentence 1: \"{text}\"\nSentence 2: \"{text_b}\"\nThe two sentences are {label}. "
                  "Explain in one short sentence why they are {label}.",
}
SYSTEM = "You explain labels of texts in one short sentence."
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class ChatClient:
    """OpenAI-compatible chat completions with timeout, retries, bounded concurrency and a request cache.

    Args:
        base_url: the API root, e.g. ``https://api.openai.com/v1`` or a local server's ``http://127.0.0.1:8000/v1``.
        model: the model name sent with each request.
        api_key_env: the environment variable holding the key (unset: no Authorization header).
        timeout: seconds per request.
        retries: further attempts after a transient failure.
        backoff, max_backoff: the wait before retry ``a`` is ``min(backoff · 2^a, max_backoff)`` seconds.
        concurrency: requests in flight at most.
        temperature, max_tokens: sent with each request.
        cache_path: the request cache (JSONL); ``None`` until the oracle sets it to the run's folder.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0,
                 retries: int = 5, backoff: float = 1.0, max_backoff: float = 30.0, concurrency: int = 4,
                 temperature: float = 0.0, max_tokens: int = 128, cache_path: str | Path | None = None):
        if concurrency < 1 or retries < 0 or timeout <= 0:
            raise ConfigError(f"llm client: concurrency >= 1, retries >= 0 and timeout > 0 are needed, got "
                              f"{concurrency}, {retries}, {timeout}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key_env, self.timeout = model, api_key_env, timeout
        self.retries, self.backoff, self.max_backoff, self.concurrency = retries, backoff, max_backoff, concurrency
        self.temperature, self.max_tokens = temperature, max_tokens
        self.requests = 0  # HTTP requests sent (retries included)
        self._lock = threading.Lock()
        self._cache: dict[str, str] = {}
        self.cache_path: Path | None = None
        if cache_path is not None:
            self.use_cache(cache_path)

    # --------------------------------------------------------------- cache
    def use_cache(self, path: str | Path) -> None:
        """Read (and from now on append to) the request cache at ``path``."""
        self.cache_path = Path(path)
        if self.cache_path.exists():
            for line in self.cache_path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    if row.get("content") is None:
                        self._cache.pop(row["key"], None)
                    else:
                        self._cache[row["key"]] = row["content"]

    def key(self, messages: Messages) -> str:
        return hashlib.sha256(json.dumps([self.model, messages], sort_keys=True).encode()).hexdigest()

    def forget(self, messages: Messages) -> None:
        """Drop a cached answer (e.g. one the validator rejected), so that it is asked again."""
        k = self.key(messages)
        with self._lock:
            if self._cache.pop(k, None) is not None:
                self._append({"key": k, "content": None})

    def _append(self, row: dict[str, Any]) -> None:
        if self.cache_path is not None:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.cache_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

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

    def _post(self, messages: Messages) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.temperature,
                           "max_tokens": self.max_tokens}).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))
            with self._lock:
                self.requests += 1
            try:
                req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    reply = json.loads(resp.read().decode())
                return str(reply["choices"][0]["message"]["content"] or "")
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read()[:300].decode(errors='replace')}"
                if e.code not in RETRY_STATUS:
                    raise ExilError(f"the LLM endpoint {self.url} refused the request ({last}); check "
                                    f"base_url, model and ${self.api_key_env}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            except (KeyError, IndexError, ValueError) as e:
                last = f"an unexpected reply ({type(e).__name__}: {e})"
        raise ExilError(f"the LLM endpoint {self.url} failed {self.retries + 1} times; last: {last}. "
                        "The run stopped; resume it (loop.resume=<run dir>) to ask again — answers so far are kept")


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
    """

    kinds = ("label", "explain_label")

    def __init__(self, client: ChatClient, labels: Oracle, task: str = "sentiment", template: str | None = None,
                 verbalizer: Mapping[str, str] | None = None, system: str = SYSTEM, max_attempts: int = 3):
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
        self._open_cache(ctx)
        conversations = self.conversations(question, ctx)
        self._asked[question.key] = conversations
        replies = self.client.complete_many(conversations)
        return {"label": question.payload["label"], "explanations": replies}

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
