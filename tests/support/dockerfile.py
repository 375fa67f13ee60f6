"""Reads what a Dockerfile's final stage says about the container it makes: its entrypoint,
command, environment, working directory and user, as a container engine would apply them.

Enough of the Dockerfile syntax for our own files (line continuations, comments, JSON exec
form, `ENV k=v ...` and the legacy `ENV k v`, `$VAR` and `${VAR}` in ENV values); anything else
it meets in those instructions is an error, so a test never reads a guess.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ImageConfig", "final_stage", "instructions"]

_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str = ""

    @property
    def argv(self) -> tuple[str, ...]:
        """What the container runs when the pod gives neither `command` nor `args`."""
        return self.entrypoint + self.cmd


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuations joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, args = whole.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def _exec_form(keyword: str, args: str) -> tuple[str, ...]:
    try:
        value = json.loads(args)
    except ValueError as exc:
        raise ValueError(f"{keyword} {args}: only the exec (JSON) form is read") from exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{keyword} {args}: not a JSON list of strings")
    return tuple(value)


def _substitute(value: str, env: dict[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), value)


def _env_pairs(args: str, env: dict[str, str]) -> dict[str, str]:
    words = shlex.split(args)
    if words and "=" not in words[0]:  # legacy form: ENV key value with spaces
        key, _, value = args.partition(" ")
        return {key: _substitute(value.strip(), env)}
    pairs: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise ValueError(f"ENV {args}: {word!r} is not key=value")
        pairs[key] = _substitute(value, {**env, **pairs})
    return pairs


def final_stage(path: Path) -> ImageConfig:
    """The configuration of the image the last `FROM` starts. The base image's own settings
    are not known here: our final stages set all they rely on, an ENTRYPOINT above all."""
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in instructions(path.read_text()):
        if keyword == "FROM":
            stages.append([])
        elif stages:
            stages[-1].append((keyword, args))
    if not stages:
        raise ValueError(f"{path}: no FROM")
    if not any(keyword == "ENTRYPOINT" for keyword, _ in stages[-1]):
        raise ValueError(f"{path}: the final stage has no ENTRYPOINT (the base image's is unknown)")
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: dict[str, str] = {}
    workdir, user = "/", ""
    cmd_set = False
    for keyword, args in stages[-1]:
        if keyword == "ENTRYPOINT":
            entrypoint = _exec_form(keyword, args)
            if not cmd_set:
                cmd = ()  # an ENTRYPOINT drops the CMD inherited from the base image
        elif keyword == "CMD":
            cmd, cmd_set = _exec_form(keyword, args), True
        elif keyword == "ENV":
            env.update(_env_pairs(args, env))
        elif keyword == "WORKDIR":
            workdir = str(Path(workdir) / _substitute(args, env))
        elif keyword == "USER":
            user = args
    return ImageConfig(entrypoint=entrypoint, cmd=cmd, env=env, workdir=workdir, user=user)
