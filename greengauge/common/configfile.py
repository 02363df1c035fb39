"""Config files: YAML in, a validated pydantic model out, errors that name file, line and field.

Shared by the agent and the collector for their own config models; it knows no domain.
`${NAME}` and `${NAME:-default}` in string values are replaced from the environment, and
`${file:PATH}` by the content of a file (a secret mounted by Docker, systemd credentials,
Kubernetes), its trailing newline removed, PATH relative to the config file's folder; so
secrets stay out of config files. A secret field (password, token, ...) that is still the
examples' `change-me`, or reads a variable that is set but empty, is refused, naming the
field and where its value came from.

A file is anything a user or an attacker can write, so reading one is bounded: its size,
how deep it nests, how much its YAML aliases expand to and how long a number may be;
beyond a bound it is a config error like any other, naming the line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from greengauge.common.files import read_limited
from greengauge.common.secrets import is_placeholder, is_secret_name

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]

# One pass: ${file:PATH}, or ${NAME} / ${NAME:-default}; what a substitution gives is not
# expanded again (a secret may contain "${").
ENV_PATTERN: Final = r"\$\{(?:file:([^}]+)|([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?)\}"
"""`${file:PATH}`, `${VAR}` or `${VAR:-default}` in a value (the JSON schema allows it too)."""
_ENV_RE = re.compile(ENV_PATTERN)
MAX_SECRET_FILE_BYTES = 64 * 1024
# Generous for the largest plant model; a gateway still composes it in well under a second.
MAX_FILE_BYTES = 4 * 1024 * 1024
# Configs nest a few levels; Python's own recursion limit is ~1000 frames.
MAX_DEPTH = 64
# Values that aliases add (a value reached through an alias counts each time): an anchor
# reused for every meter stays far below, a "billion laughs" file is refused before it
# grows. The composer shares aliased nodes, so only the builder can expand them.
MAX_ALIAS_VALUES = 100_000
# Longer numbers are no setting, and sexagesimal ints (1:2:3) cost quadratic time to build.
MAX_NUMBER_CHARS = 100
# YAML's line breaks, as libyaml counts lines.
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_PLAIN_KEY = re.compile(r"[\w-]+")
_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


class ConfigError(Exception):
    """A config file that cannot be used; each problem is one line `file:line: field: reason`."""

    def __init__(self, problems: list[str]) -> None:
        # One line each whatever a key, a name or a path in the file holds ("a\nb", NUL).
        problems = [p if p.isprintable() else _printable(p) for p in problems]
        super().__init__("\n".join(problems))
        self.problems = problems


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _expand_env(
    value: str, where: str, environ: Mapping[str, str], base: Path, secret: bool = False
) -> str:
    """`secret`: the value is a secret field's, which must not be a placeholder."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return checked(read_file(match.group(1)), f"secret file {match.group(1).strip()}")
        name, default = match.group(2), match.group(3)
        if name in environ:
            if secret and default is None and environ[name] == "":
                raise ConfigError([f"{where}: environment variable {name} is empty: set it"])
            return checked(environ[name], f"environment variable {name}")
        if default is not None:
            return checked(default, "its default")
        raise ConfigError([f"{where}: environment variable {name} is not set"])

    def checked(text: str, source: str) -> str:
        if secret and is_placeholder(text):
            raise ConfigError(
                [f"{where}: {source} is still the example's placeholder: set a real secret"]
            )
        return text

    def read_file(name: str) -> str:
        # The error names the file, never its content: it is a secret.
        path = base / name.strip()
        try:
            data = read_limited(path, MAX_SECRET_FILE_BYTES)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigError([f"{where}: cannot read secret file {path}: {reason}"]) from None
        try:
            return data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise ConfigError([f"{where}: secret file {path} is not UTF-8 text"]) from None

    # Up to the last "}" only: then every "${" has a "}" ahead, each match attempt ends at
    # the next one or fails at once, and the pass is linear (over a tail of "${" with no
    # "}", the regex rescans to the end from each: quadratic, hours for a large file).
    end = value.rfind("}") + 1
    return checked(_ENV_RE.sub(substitute, value[:end]) + value[end:], "the value")


class _Builder:
    """Turns a composed YAML node tree into plain data, remembering each path's line."""

    def __init__(self, name: str, environ: Mapping[str, str]) -> None:
        self.name = name
        self.environ = environ
        self.base = Path(name).parent
        self.lines: dict[Loc, int] = {}
        self._loader = yaml.SafeLoader("")
        self._built: set[int] = set()
        self._open: set[int] = set()
        self._alias_values = 0

    def build(self, node: yaml.Node, loc: Loc, used_at: int = 1) -> Any:
        """`used_at`: the line of the value's key, or of the list holding it; used for an
        aliased node, whose own marks are its anchor's, elsewhere in the file."""
        aliased = id(node) in self._built
        line = used_at if aliased else node.start_mark.line + 1
        self.lines[loc] = line
        where = f"{self.name}:{line}"
        self._check_bounds(node, loc, where, aliased)
        self._built.add(id(node))
        self._open.add(id(node))
        try:
            return self._build(node, loc, line, where, aliased)
        finally:
            self._open.discard(id(node))

    def _check_bounds(self, node: yaml.Node, loc: Loc, where: str, aliased: bool) -> None:
        field = _dotted(loc)
        if id(node) in self._open:
            raise ConfigError([f"{where}: {field}: an alias refers to a value that contains it"])
        if len(loc) > MAX_DEPTH:
            raise ConfigError([f"{where}: {field}: nested deeper than {MAX_DEPTH} levels"])
        if aliased:
            self._alias_values += 1
            if self._alias_values > MAX_ALIAS_VALUES:
                raise ConfigError(
                    [f"{where}: {field}: aliases expand to more than {MAX_ALIAS_VALUES} values"]
                )

    def _build(self, node: yaml.Node, loc: Loc, line: int, where: str, aliased: bool) -> Any:
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                key_where = f"{self.name}:{key_line}"
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise ConfigError([f"{key_where}: YAML merge keys ('<<') are not supported"])
                if not isinstance(key_node, yaml.ScalarNode):
                    # Not constructed: that would expand whatever aliases it holds.
                    raise ConfigError(
                        [
                            f"{key_where}: {_dotted(loc)}: a key must be a plain value, not a "
                            f"{'list' if isinstance(key_node, yaml.SequenceNode) else 'mapping'}"
                        ]
                    )
                key = self._construct(key_node, loc)
                if not isinstance(key, str | int):
                    raise ConfigError([f"{key_where}: a key must be a plain value, not {key!r}"])
                if key in result:
                    raise ConfigError([f"{key_where}: key {key!r} appears twice"])
                # Inside an alias every key's own line is the anchor's: the use is `line`.
                used_at = line if aliased else key_line
                result[key] = self.build(value_node, (*loc, key), used_at)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i), line) for i, item in enumerate(node.value)]
        value = self._construct(node, loc)
        if isinstance(value, str):
            if "\0" in value:
                # No setting holds one, and a path with one is a ValueError at first use.
                raise ConfigError([f"{where}: {_dotted(loc)}: a value cannot hold a NUL character"])
            secret = bool(loc) and is_secret_name(str(loc[-1]))
            return _expand_env(value, f"{where}: {_dotted(loc)}", self.environ, self.base, secret)
        return value

    def _construct(self, node: yaml.Node, loc: Loc) -> Any:
        where = f"{self.name}:{node.start_mark.line + 1}: {_dotted(loc)}"
        kind = node.tag.rpartition(":")[2]
        if node.tag in _NUMBER_TAGS and len(node.value) > MAX_NUMBER_CHARS:
            raise ConfigError([f"{where}: a number longer than {MAX_NUMBER_CHARS} characters"])
        try:
            return self._loader.construct_object(node)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError([f"{where}: {problem} (tag {node.tag})"]) from exc
        except (ValueError, IndexError, KeyError, AttributeError) as exc:
            # An explicit tag hands its constructor a value it does not fit (`!!int ''` is
            # an IndexError, `!!bool x` a KeyError), and a date may not exist (2024-02-30):
            # only that reason is shown, the others would show the value.
            reason = f": {exc}" if kind == "timestamp" and isinstance(exc, ValueError) else ""
            raise ConfigError([f"{where}: not a valid {kind}{reason}"]) from exc


def _dotted(loc: Loc) -> str:
    # A key that is empty, or holds a space or a dot, is quoted: `meters.0.' x'`.
    return (
        ".".join(
            str(part) if isinstance(part, int) or _PLAIN_KEY.fullmatch(part) else repr(part)
            for part in loc
        )
        or "(top level)"
    )


def load_yaml(path: Path, environ: Mapping[str, str] | None = None) -> tuple[Any, dict[Loc, int]]:
    """Plain data from a YAML file and the line where each path starts."""
    text = read_text(path, MAX_FILE_BYTES)
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}:{_syntax_error(exc, text)}"]) from exc
    if node is None or (isinstance(node, yaml.ScalarNode) and node.value == ""):
        raise ConfigError([f"{path}:1: the file is empty"])
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


def _syntax_error(exc: yaml.YAMLError, text: str) -> str:
    """`LINE: YAML syntax: reason` on one line (PyYAML's own text takes two or three)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        # At the end of a file with no final newline libyaml's mark is one line past it.
        line = min(mark.line + 1, _line_of(text, len(text))) if mark else 1
        context = exc.context or ""
        if context and exc.context_mark and exc.context_mark.line + 1 != line:
            context += f" (line {exc.context_mark.line + 1})"
        problem = ", ".join(part for part in (context, exc.problem or "") if part)
        return f"{line}: YAML syntax: {problem}"
    if isinstance(exc, yaml.reader.ReaderError):
        # It says "position N", an offset in characters: no one finds that in an editor.
        line = _line_of(text, exc.position)
        return f"{line}: YAML syntax: character #x{exc.character:04x}: {exc.reason}"
    return f"1: YAML syntax: {' '.join(str(exc).split())}"


def _line_of(text: str, position: int) -> int:
    return len(_LINE_BREAK.findall(text, 0, position)) + 1


def read_text(path: Path, limit: int) -> str:
    """A UTF-8 text file of at most `limit` bytes; ConfigError (naming the line) if not."""
    try:
        data = read_limited(path, limit)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"{path}:{line}: not UTF-8 text: {exc.reason}"]) from exc


def read_beside(file: Path, context: Mapping[str, object] | None) -> tuple[str, str]:
    """A data file a config names (relative to the config file's folder, which loading
    puts in the validation context), as (text, path shown in errors); ValueError naming
    the file when it cannot be read, so pydantic reports it at the field."""
    base = (context or {}).get("config_dir")
    path = file if file.is_absolute() or not isinstance(base, Path) else base / file
    try:
        return read_text(path, MAX_FILE_BYTES), str(path)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _in_file(loc: Loc, lines: Mapping[Loc, int]) -> Loc:
    """The longest path of `loc` that the file has. Pydantic puts a union member's name in
    a loc (`output.OutputFromMeter.meter`): a step the file does not have is skipped."""
    known: Loc = ()
    for part in loc:
        if (*known, part) in lines:
            known = (*known, part)
    return known


def describe_errors(error: ValidationError, name: str, lines: Mapping[Loc, int]) -> list[str]:
    """One line per pydantic error, pointing at the nearest line the file has for its field."""
    problems = []
    for item in error.errors(include_url=False):
        loc: Loc = tuple(item["loc"])
        line = lines.get(_in_file(loc, lines), 1)
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
