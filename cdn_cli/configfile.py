"""Reading the TOML config file: the only place that touches the file and the environment."""

from __future__ import annotations

import argparse
import os
import tomllib

from cdn_core.config import Config, load_config
from cdn_core.errors import ConfigError

ENV_CONFIG = "CDN_CONFIG"


def read_config(path: str | None) -> Config:
    """Load and validate the config at ``path`` (default: ``$CDN_CONFIG``).

    Raises:
        ConfigError: the file is missing, not TOML, or not a valid overlay config.
    """
    path = path or os.environ.get(ENV_CONFIG)
    if not path:
        raise ConfigError(
            "--config", None, f"no config file given (pass --config or set {ENV_CONFIG})"
        )
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError("--config", path, f"cannot read the file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("<toml>", path, f"not valid TOML: {exc}") from None
    return load_config(data, base_dir=os.path.dirname(os.path.abspath(path)))


def read_secret(config: Config) -> bytes:
    """The cluster secret from ``secret_file``, stripped of surrounding whitespace."""
    try:
        with open(config.secret_file, "rb") as file:
            secret = file.read().strip()
    except OSError as exc:
        raise ConfigError(
            "secret_file", config.secret_file, f"cannot read: {exc.strerror}"
        ) from None
    if len(secret) < 16:
        raise ConfigError("secret_file", config.secret_file, "the secret must be at least 16 bytes")
    return secret


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help=f"the overlay's TOML config (default: ${ENV_CONFIG})",
    )
