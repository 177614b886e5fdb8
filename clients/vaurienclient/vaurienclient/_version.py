"""The version of the vaurienclient distribution (read by pyproject.toml and `vaurienctl --version`)."""
__version__ = "2.0.0"
