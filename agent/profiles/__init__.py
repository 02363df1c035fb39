"""Meter profiles: built-in data files shipped with the package, and users' own files."""

from __future__ import annotations

from pathlib import Path

from agent.profiles.model import Function, Profile, RegisterSpec
from greengauge.common.configfile import ConfigError, load_model

__all__ = ["Function", "Profile", "ProfileError", "RegisterSpec", "builtin_names", "load_profile"]


class ProfileError(ConfigError):
    """A profile that does not exist or does not validate."""


def _builtin_dir() -> Path:
    # The profiles are files beside this module (the package is never zipped); not
    # importlib.resources, which would cost a gateway ~2 MiB of imports for a folder name.
    return Path(__file__).parent


def builtin_names() -> list[str]:
    """Names of the profiles shipped with the agent."""
    return sorted(p.stem for p in _builtin_dir().glob("*.yaml"))


def load_profile(name_or_path: str, config_dir: Path | None = None) -> Profile:
    """A built-in profile by name, or a user's profile file (relative to the config's folder)."""
    if name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path)
        if not path.is_absolute() and config_dir is not None:
            path = config_dir / path
    else:
        # Looked up among the names, not on disk: any text is a name ('../x', 5,000 letters).
        if name_or_path not in builtin_names():
            raise ProfileError(
                [
                    f"unknown profile {name_or_path!r}: built-in profiles are "
                    f"{', '.join(builtin_names())}, or give a path to a .yaml file"
                ]
            )
        path = _builtin_dir() / f"{name_or_path}.yaml"
    try:
        profile, _ = load_model(path, Profile)
    except ConfigError as exc:
        raise ProfileError(exc.problems) from exc
    if path.parent == _builtin_dir() and profile.model != path.stem:
        raise ProfileError([f"{path}: model {profile.model!r} must match the file name"])
    return profile
