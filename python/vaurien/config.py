# ***** BEGIN LICENSE BLOCK *****
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file,
# You can obtain one at http://mozilla.org/MPL/2.0/.
# ***** END LICENSE BLOCK *****
"""Configuration file reader / writer: the original's, on Python 3's ``configparser``.

https://wiki.mozilla.org/index.php?title=Services/Sync/Server/GlobalConfFile

Values are typed by :func:`convert`: integers, ``true``/``false``, ``"quoted strings"``,
``${ENV_VAR}`` expansion, multi-line values as lists; ``[DEFAULT] extends = other.ini`` merges
another file. (The ``vaurien`` command reads its ``--config`` file in the engine, with the same
rules; this module is for code that used the original's.)"""
from __future__ import annotations

import os
import re
from configparser import RawConfigParser
from os.path import abspath, expanduser, expandvars, normpath
from typing import IO, Any, Dict, List, Union

from vaurien import _vaurien

__all__ = ["Config", "SettingsDict", "DEFAULT_SETTINGS", "convert", "load_into_settings"]

_IS_NUMBER = re.compile(r"^-?[0-9].*")
_IS_ENV_VAR = re.compile(r"\$\{(\w.*)?\}")
_UNSET = object()


def convert(value: Any) -> Any:
    """Converts a config value"""

    def _get_env(matchobj: "re.Match[str]") -> str:
        var = matchobj.groups()[0]
        if var not in os.environ:
            raise KeyError(var)
        return os.environ[var]

    def _convert(value: Any) -> Any:
        if not isinstance(value, str):
            # already converted
            return value

        value = value.strip()
        if _IS_NUMBER.match(value):
            try:
                return int(value)
            except ValueError:
                pass
        elif value.startswith('"') and value.endswith('"'):
            return value[1:-1]
        elif value.lower() in ("true", "false"):
            return value.lower() == "true"
        return _IS_ENV_VAR.sub(_get_env, value)

    if isinstance(value, str) and "\n" in value:
        return [line for line in [_convert(line) for line in value.split("\n")] if line != ""]

    return _convert(value)


class Config(RawConfigParser):
    """An ini file whose values are typed by :func:`convert` (a path or an open file)."""

    def __init__(self, filename: Union[str, "os.PathLike[str]", IO[str]]) -> None:
        # the original's parser (Python 2) merged repeated sections and took inline ; comments
        RawConfigParser.__init__(self, strict=False, inline_comment_prefixes=(";",))
        if isinstance(filename, (str, os.PathLike)):
            self.read(filename)
        else:
            self.read_file(filename)

    def _read(self, fp: IO[str], fpname: str) -> None:
        # first pass
        RawConfigParser._read(self, fp, fpname)  # type: ignore[attr-defined]

        # let's expand it now if needed
        defaults = self.defaults()

        if "extends" in defaults:
            extends = convert(defaults["extends"])
            if not isinstance(extends, list):
                extends = [extends]
            for file_ in extends:
                self._extend(file_)

    def _serialize(self, value: Any) -> str:
        """values are serialized on every set"""
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, int):
            value = str(value)
        elif isinstance(value, (list, tuple)):
            value = "\n".join(["    %s" % line for line in value]).strip()
        else:
            value = str(value)
        return value

    def _unserialize(self, value: Any) -> Any:
        """values are serialized on every get"""
        return convert(value)

    def get_map(self, section: Union[str, None] = None) -> Dict[str, Any]:
        """returns a dict representing the config set"""
        if section:
            return dict(self.items(section))

        res = {}
        for section in self.sections():
            for option, value in self.items(section):
                option = "%s.%s" % (section, option)
                res[option] = self._unserialize(value)
        return res

    def set(self, section: str, option: str, value: Any = None) -> None:
        RawConfigParser.set(self, section, option, self._serialize(value))

    def mget(self, section: str, option: str) -> List[Any]:
        value = self.get(section, option)
        if not isinstance(value, list):
            value = [value]
        return value

    def get(self, section: str, option: str, **kwargs: Any) -> Any:  # type: ignore[override]
        return self._unserialize(RawConfigParser.get(self, section, option, **kwargs))

    def items(self, section: Any = _UNSET, **kwargs: Any) -> Any:  # type: ignore[override]
        if section is _UNSET:
            return RawConfigParser.items(self)
        items = RawConfigParser.items(self, section, **kwargs)
        return [(option, self._unserialize(value)) for option, value in items]

    def _extend(self, filename: str) -> None:
        """Expand the config with another file."""
        if not os.path.isfile(filename):
            raise IOError("No such file: %s" % filename)
        parser = RawConfigParser(strict=False, inline_comment_prefixes=(";",))
        parser.read([filename])
        for section in parser.sections():
            if not self.has_section(section):
                self.add_section(section)
            for option, value in parser.items(section):
                if self.has_option(section, option):
                    continue
                RawConfigParser.set(self, section, option, value)


def load_into_settings(filename: str, settings: Dict[str, Any]) -> Config:
    """Loads an ini file into a settings dict: ``[section]`` / ``[a:b]`` options become
    ``section.option`` / ``a.b.option`` keys; ``settings['config']`` is the :class:`Config`."""
    filename = abspath(normpath(expandvars(expanduser(filename))))

    if not os.path.isfile(filename):
        raise ValueError("Unexistant filename '%s'" % filename)

    config = Config(filename)

    # Put values from the config file into the pyramid settings dict.
    for section in config.sections():
        setting_prefix = section.replace(":", ".")
        for name, value in config.get_map(section).items():
            settings[setting_prefix + "." + name] = value

    # Store a reference to the Config object itself for later retrieval.
    settings["config"] = config
    return config


class SettingsDict(dict):  # type: ignore[type-arg]
    """A dict of dotted setting names (``section.name``) with some extra helpers:

    * setdefaults:  copy any unset settings from another dict
    * getsection:   return a dict of settings for just one subsection
    * sections:     return a list of sections for the settings
    """

    separator = "."

    def copy(self) -> "SettingsDict":
        """A shallow copy, also a SettingsDict."""
        return self.__class__(self)

    def sections(self) -> List[str]:
        """Return a list of sections for this dict"""
        sections: List[str] = []
        for key in self.keys():
            if self.separator in key:
                sec, _ = key.rsplit(self.separator, 1)
                if sec not in sections:
                    sections.append(sec)
        return sections

    def getsection(self, section: str) -> "SettingsDict":
        """The keys of one section, without the section's name::

            >>> SettingsDict({"a.one": 1, "a.two": 2, "b.three": 3}).getsection("a")
            {'one': 1, 'two': 2}
        """
        section_items = self.__class__()
        # If the section is "" then get keys without a section.
        if not section:
            for key, value in self.items():
                if self.separator not in key:
                    section_items[key] = value
        # Otherwise, get keys prefixed with that section name.
        else:
            prefix = section + self.separator
            for key, value in self.items():
                if key.startswith(prefix):
                    section_items[key[len(prefix):]] = value
        return section_items

    def setdefaults(self, *args: Any, **kwds: Any) -> None:
        """Like update(), without overwriting existing keys."""
        for arg in args:
            if hasattr(arg, "keys"):
                for k in arg:
                    self.setdefault(k, arg[k])  # type: ignore[index]
            else:
                for k, v in arg:
                    self.setdefault(k, v)
        for k, v in kwds.items():
            self.setdefault(k, v)


#: The original's settings (``vaurien.timeout``, ``statsd.host``, ...) and their defaults, from
#: the engine's settings table: its rows that name an ``original`` key (``statsd.host`` keeps
#: the original's ``localhost`` where the command's default is ``127.0.0.1``).
DEFAULT_SETTINGS = SettingsDict(
    (row["original"], row["original_default"]) for row in _vaurien.settings() if row["original"]
)
