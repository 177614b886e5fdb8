#!/usr/bin/env python3
"""Pastes `vaurien --help` into README.md between the cli-help markers.
Usage: python3 scripts/update-readme-help.py [path/to/vaurien]"""
import pathlib
import re
import subprocess
import sys

root = pathlib.Path(__file__).resolve().parent.parent
exe = sys.argv[1] if len(sys.argv) > 1 else str(root / "target" / "debug" / "vaurien")
help_text = subprocess.run([exe, "--help"], check=True, capture_output=True, text=True).stdout.rstrip()
readme = root / "README.md"
text = readme.read_text()
new = re.sub(
    r"(<!-- cli-help-start -->\n```text\n).*?(```\n<!-- cli-help-end -->)",
    lambda m: m.group(1) + help_text + "\n" + m.group(2),
    text,
    flags=re.S,
)
readme.write_text(new)
print("README.md updated" if new != text else "README.md already up to date")
