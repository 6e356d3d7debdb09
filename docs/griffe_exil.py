"""A Griffe extension for the documentation site (mkdocs.yml loads it): ``exil``'s sub-packages and roles.

1. setup.py maps the repository's top-level folders into one package (``common/`` is ``exil.common``,
   ``alice/`` is ``exil.alice``, ...), so the source of ``exil.common`` is ``./common``, not ``./exil/common``,
   and Griffe's static finder, which walks ``exil/``, does not see it. When Griffe has loaded ``exil``, this
   extension asks the installed package where each sub-package lives (the editable install's finder, or
   site-packages for a regular install), loads that folder with the same loader and settings, and attaches
   it under ``exil``. Nothing is imported beyond ``exil/__init__.py``; the sources are read statically.
2. The docstrings cross-reference with Sphinx roles (``:class:`~exil.common.hooks.RoundHooks```). Each role
   becomes an optional cross-reference: a link where the target is rendered on some page of the site,
   plain code where it is not (so ``mkdocs build --strict`` never fails on a target the site leaves out).
   reST's ``::`` before a literal block becomes one colon (the indented block is already code in Markdown).
   The source files are not changed; only the text Griffe hands to mkdocstrings.
"""

from __future__ import annotations

import html
import importlib.util
import re
from pathlib import Path
from typing import Any

import griffe

SUBPACKAGES = ("common", "alice", "caipi", "xal", "exbl")

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc|const):`(?P<tilde>~?)(?P<target>[^`]+)`")
#: reST's "e.g.::" before an indented literal block: Markdown shows the block as code, and needs one colon
LITERAL = re.compile(r"(?<=\S)::\n(?=\n[ \t]+\S)")


class ExilSubpackages(griffe.Extension):
    """Attach ``exil.common``, ``exil.alice``, ... to the loaded ``exil`` package; turn roles into links."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "exil":
            return
        for name in SUBPACKAGES:
            if name in pkg.members:
                continue
            spec = importlib.util.find_spec(f"exil.{name}")
            if spec is None or not spec.submodule_search_locations:
                continue
            folder = Path(next(iter(spec.submodule_search_locations)))
            # Loaded under the folder's own name, then moved under `exil`: members' paths follow their parent.
            loader.load(folder, try_relative_path=True)
            sub = loader.modules_collection.members.pop(folder.name)
            if folder.name != name:
                sub.name = name
            pkg.set_member(name, sub)
        _rewrite_roles(pkg)


def _rewrite_roles(obj: griffe.Object) -> None:
    if obj.docstring is not None and ":" in obj.docstring.value:
        text = ROLE.sub(lambda m: _reference(obj, m), obj.docstring.value)
        obj.docstring.value = LITERAL.sub(":\n", text)
    for member in obj.members.values():
        if not member.is_alias:
            _rewrite_roles(member)


def _reference(obj: griffe.Object, match: re.Match) -> str:
    target = match["target"].strip()
    bare = target[:-2] if target.endswith("()") else target
    shown = target.rsplit(".", 1)[-1] if match["tilde"] else target
    identifier = _resolve(obj, bare.lstrip("."))
    code = f"<code>{html.escape(shown)}</code>"
    if identifier is None:
        return code
    return f'<autoref identifier="{html.escape(identifier)}" optional>{code}</autoref>'


def _resolve(obj: griffe.Object, name: str) -> str | None:
    """The full path of ``name`` as written in ``obj``'s docstring, or None where it cannot be told."""
    if name.startswith("exil."):
        return name
    first, _, rest = name.partition(".")
    scope: griffe.Object | None = obj if obj.is_class or obj.is_module else obj.parent
    while scope is not None:
        if first in scope.members or first in scope.imports:
            try:
                base = scope.resolve(first)
            except (griffe.NameResolutionError, ValueError):
                return None
            return f"{base}.{rest}" if rest else base
        scope = scope.parent
    return None
