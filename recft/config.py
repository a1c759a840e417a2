"""ConfigMixin: JSON/YAML round trips and forward-compatible loading for config dataclasses."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any, TypeVar

from recft.errors import RecftError

T = TypeVar("T", bound="ConfigMixin")


class ConfigError(RecftError, ValueError):
    """A configuration value or file is invalid; the message names the field."""


class ConfigMixin:
    """Mixin for ``@dataclass`` configs: ``to_dict``/``from_dict``/``save``/``load``.

    Unknown keys (written by a newer recft) are dropped with a warning instead of failing,
    so an old install can still read a newer checkpoint's config when the architecture
    fields it needs are present.
    """

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], values: dict[str, Any], *, source: str = "config",
                  strict: bool = False) -> T:
        """Build from a mapping.

        Args:
            values: field values.
            source: where they came from, for error messages.
            strict: unknown keys are an error (files a person wrote: a typo must not be
                ignored) instead of a warning (configs written by another recft version).
        """
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a mapping, got {type(values).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - set(known))
        if unknown and strict:
            raise ConfigError(f"{source}: unknown {cls.__name__} fields {unknown}; "
                              f"valid: {', '.join(sorted(known))}")
        if unknown:
            warnings.warn(
                f"{source}: ignoring unknown {cls.__name__} fields {unknown} "
                "(written by a newer recft?)",
                stacklevel=2,
            )
        kwargs = {}
        for name, value in values.items():
            if name not in known:
                continue
            kwargs[name] = _coerce(known[name], value)
        try:
            return cls(**kwargs)
        except TypeError as error:
            raise ConfigError(f"{source}: {error}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def save(self, path: str | Path) -> None:
        from recft.io import atomic_write_text

        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=True))
        else:
            atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls: type[T], path: str | Path) -> T:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                values = yaml.safe_load(text)
            else:
                values = json.loads(text)
        except Exception as error:
            raise ConfigError(f"{path}: cannot parse: {error}") from None
        try:
            return cls.from_dict(values or {}, source=str(path), strict=True)
        except ConfigError as error:
            message = str(error)
            raise ConfigError(message if message.startswith(str(path)) else f"{path}: {message}") from None


def _coerce(field: dataclasses.Field, value: Any) -> Any:
    """Turn JSON lists back into tuples where the dataclass default is a tuple."""
    default = field.default
    if isinstance(value, list) and isinstance(default, tuple):
        return tuple(value)
    return value
