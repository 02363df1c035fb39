"""What `energy-collector check` shows: a valid config summarised, every secret redacted."""

from __future__ import annotations

from pathlib import Path

import yaml

from collector.api.principals import Role
from collector.config import CollectorConfig, load_config
from greengauge.common.configfile import ConfigError
from greengauge.common.i18n import N_, _, ngettext
from greengauge.common.secrets import broker_summary, redact_url, redacted, tls_problems

# Sections the summary lines describe; any other section is shown as data, secrets masked.
_SUMMARISED = frozenset({"mqtt", "influxdb", "data_dir", "accounting"})


def check_report(path: Path) -> str:
    """A summary of a valid config; raises ConfigError naming every problem otherwise."""
    config = load_config(path)
    problems = tls_problems(config.mqtt, str(path))
    if problems:
        raise ConfigError(problems)
    lines = [
        _("{path}: OK").format(path=path),
        f"broker {broker_summary(config.mqtt)}",
        f"store {_store(config)}",
    ]
    lines.append(f"data_dir {config.data_dir}")
    lines.append(f"accounting {_accounting(config)}")
    lines.append(f"api {_api(config)}")
    rest = {
        name: redacted(getattr(config, name), name)
        for name in type(config).model_fields
        if name not in _SUMMARISED
    }
    dumped = yaml.safe_dump(rest, sort_keys=False, default_flow_style=False).rstrip()
    return "\n".join(lines) + "\n\n" + dumped


def _store(config: CollectorConfig) -> str:
    influx = config.influxdb
    if influx is None:
        return f"embedded SQLite {config.data_dir / 'readings.sqlite'}"
    token = "token set" if influx.token.get_secret_value() else "token EMPTY"
    return f"InfluxDB {redact_url(influx.url)} org {influx.org} bucket {influx.bucket} ({token})"


def _accounting(config: CollectorConfig) -> str:
    if config.accounting is None:
        return _("off (readings are stored only)")
    sites = config.accounting.sites
    return "; ".join(
        _("site {site}: {meters}, {lines}").format(
            site=site.id,
            meters=ngettext("{n} meter", "{n} meters", len(site.meters)).format(n=len(site.meters)),
            lines=ngettext("{n} line", "{n} lines", len(site.lines)).format(n=len(site.lines)),
        )
        for site in sites
    )


ROLE_NAMES = {Role.VIEWER: N_("viewer"), Role.OPERATOR: N_("operator"), Role.ADMIN: N_("admin")}


def _api(config: CollectorConfig) -> str:
    """Who may use the API: its users and roles, legacy tokens, the single sign-on proxy."""
    api = config.api
    if api is None:
        return _("off (no dashboard)")
    if api.open:
        return _("{listen}: open to anyone on this computer (no tokens)").format(listen=api.listen)
    access = []
    if api.users:
        names = ", ".join(
            _("{name} ({role})").format(name=u.name, role=_(ROLE_NAMES[u.role])) for u in api.users
        )
        count = ngettext("{n} user", "{n} users", len(api.users)).format(n=len(api.users))
        access.append(f"{count}: {names}")
    legacy = [name for name, _token in api.legacy_tokens()]
    if legacy:
        access.append(_("legacy shared tokens: {names}").format(names=", ".join(legacy)))
    if api.trusted_proxy is not None:
        networks = ", ".join(str(n) for n in api.trusted_proxy.from_)
        access.append(_("single sign-on proxy from {networks}").format(networks=networks))
    return _("{listen}: {access}").format(listen=api.listen, access="; ".join(access))
