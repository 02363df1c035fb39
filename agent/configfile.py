"""Config files: YAML in, a validated pydantic model out, errors that name file, line and field.

Shared by the agent and the collector for their own config models; it knows no domain.
`${NAME}` and `${NAME:-default}` in string values are replaced from the environment, and
`${file:PATH}` by the content of a file (a secret mounted by Docker, systemd credentials,
Kubernetes), its trailing newline removed, PATH relative to the config file's folder; so
secrets stay out of config files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]

# One pass: ${file:PATH}, or ${NAME} / ${NAME:-default}; what a substitution gives is not
# expanded again (a secret may contain "${").
_ENV_RE = re.compile(r"\$\{(?:file:([^}]+)|([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?)\}")
MAX_SECRET_FILE_BYTES = 64 * 1024


class ConfigError(Exception):
    """A config file that cannot be used; each problem is one line `file:line: field: reason`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _expand_env(value: str, where: str, environ: Mapping[str, str], base: Path) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return read_file(match.group(1))
        name, default = match.group(2), match.group(3)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError([f"{where}: environment variable {name} is not set"])

    def read_file(name: str) -> str:
        # The error names the file, never its content: it is a secret.
        path = base / name.strip()
        try:
            with path.open("rb") as file:
                data = file.read(MAX_SECRET_FILE_BYTES + 1)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigError([f"{where}: cannot read secret file {path}: {reason}"]) from None
        if len(data) > MAX_SECRET_FILE_BYTES:
            raise ConfigError([f"{where}: secret file {path} is larger than 64 KiB"])
        try:
            return data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise ConfigError([f"{where}: secret file {path} is not UTF-8 text"]) from None

    return _ENV_RE.sub(substitute, value)


class _Builder:
    """Turns a composed YAML node tree into plain data, remembering each path's line."""

    def __init__(self, name: str, environ: Mapping[str, str]) -> None:
        self.name = name
        self.environ = environ
        self.base = Path(name).parent
        self.lines: dict[Loc, int] = {}
        self._loader = yaml.SafeLoader("")

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        line = node.start_mark.line + 1
        self.lines[loc] = line
        where = f"{self.name}:{line}"
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key_where = f"{self.name}:{key_node.start_mark.line + 1}"
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise ConfigError([f"{key_where}: YAML merge keys ('<<') are not supported"])
                key = self._construct(key_node)
                if not isinstance(key, str | int):
                    raise ConfigError([f"{key_where}: a key must be a plain value, not {key!r}"])
                if key in result:
                    raise ConfigError([f"{key_where}: key {key!r} appears twice"])
                result[key] = self.build(value_node, (*loc, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        value = self._construct(node)
        if isinstance(value, str):
            return _expand_env(value, f"{where}: {_dotted(loc)}", self.environ, self.base)
        return value

    def _construct(self, node: yaml.Node) -> Any:
        try:
            return self._loader.construct_object(node)
        except yaml.YAMLError as exc:
            line = node.start_mark.line + 1
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError([f"{self.name}:{line}: {problem} (tag {node.tag})"]) from exc


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def load_yaml(path: Path, environ: Mapping[str, str] | None = None) -> tuple[Any, dict[Loc, int]]:
    """Plain data from a YAML file and the line where each path starts."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text: {exc.reason}"]) from exc
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ConfigError([f"{path}:{line}: YAML syntax: {exc.problem}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: YAML syntax: {exc}"]) from exc
    if node is None or (isinstance(node, yaml.ScalarNode) and node.value == ""):
        raise ConfigError([f"{path}: the file is empty"])
    builder = _Builder(str(path), os.environ if environ is None else environ)
    return builder.build(node, ()), builder.lines


# A value this long may be a secret pasted into the wrong field: no message repeats it.
_SHOWN_VALUE_MAX = 7


def _without_value(message: str, value: object) -> str:
    """The message without the field's value in it: every error is worded from here."""
    if isinstance(value, str) and len(value) > _SHOWN_VALUE_MAX:
        for shown in (repr(value), value):
            message = message.replace(shown, "(the value)")
    return message


def describe_errors(error: ValidationError, name: str, lines: Mapping[Loc, int]) -> list[str]:
    """One line per pydantic error, pointing at the nearest line the file has for its field."""
    problems = []
    for item in error.errors(include_url=False):
        loc: Loc = tuple(item["loc"])
        known = loc
        while known and known not in lines:
            known = known[:-1]
        line = lines.get(known, 1)
        message = _without_value(item["msg"].removeprefix("Value error, "), item["input"])
        if item["type"] == "extra_forbidden":
            message = "unknown field (misspelt, or not valid here)"
        problems.append(f"{name}:{line}: {_dotted(loc)}: {message}")
    return problems


def load_model(
    path: Path, model: type[M], environ: Mapping[str, str] | None = None
) -> tuple[M, dict[Loc, int]]:
    """A validated config file and the line of each path in it, for errors found later.

    Raises ConfigError listing every problem found.
    """
    data, lines = load_yaml(path, environ)
    try:
        # Relative paths inside a config are relative to its folder, as data_dir is.
        return model.model_validate(data, context={"config_dir": path.parent}), lines
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, str(path), lines)) from exc
