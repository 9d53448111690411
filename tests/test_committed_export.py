"""The committed exported/: every file the manifest names is either in git or kept out of git and the Bento alike."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXPORTED = REPO / "exported"


def test_unshipped_files_are_ignored_by_git_and_the_bento_and_shipped_ones_are_tracked():
    manifest = json.loads((EXPORTED / "manifest.json").read_text())
    unshipped = sorted(f"/{e['file']}" for e in manifest["models"].values() if not e["shipped"])
    # Copied in by hand, the export once brought its .gitignore and not its .bentoignore: the image took VGG16's 59 MB.
    for name in (".gitignore", ".bentoignore"):
        assert sorted((EXPORTED / name).read_text().split()) == unshipped, name
    tracked = subprocess.run(
        ["git", "ls-files", "exported"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for entry in manifest["models"].values():
        assert (f"exported/{entry['file']}" in tracked) == entry["shipped"], entry["file"]
