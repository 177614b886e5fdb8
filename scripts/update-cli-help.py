#!/usr/bin/env python3
"""Pastes `vaurien --help` into docs/cli.md between the cli-help markers
(tests/cli.rs::the_cli_reference_in_docs_matches_help fails until they match).
Usage: python3 scripts/update-cli-help.py [path/to/vaurien]"""
import pathlib
import re
import subprocess
import sys

root = pathlib.Path(__file__).resolve().parent.parent
exe = sys.argv[1] if len(sys.argv) > 1 else str(root / "target" / "debug" / "vaurien")
help_text = subprocess.run([exe, "--help"], check=True, capture_output=True, text=True).stdout.rstrip()
doc = root / "docs" / "cli.md"
text = doc.read_text()
new = re.sub(
    r"(<!-- cli-help-start -->\n```text\n).*?(```\n<!-- cli-help-end -->)",
    lambda m: m.group(1) + help_text + "\n" + m.group(2),
    text,
    flags=re.S,
)
doc.write_text(new)
print("docs/cli.md updated" if new != text else "docs/cli.md already up to date")
