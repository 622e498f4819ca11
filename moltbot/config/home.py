"""MOLTBOT_HOME: the directory layout (the original scheduler's), created on first start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["DEFAULT_HOME", "Home"]

DEFAULT_HOME = "~/moltbot-system"


class Home(NamedTuple):
    # A NamedTuple, not a dataclass: every command needs a Home, and `moltbot status` never
    # imports dataclasses (~5 ms with what it pulls in).
    root: Path

    @classmethod
    def from_env(cls, override: str | None = None) -> Home:
        raw = override or os.environ.get("MOLTBOT_HOME") or DEFAULT_HOME
        return cls(Path(raw).expanduser().absolute())

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def tasks_json(self) -> Path:
        return self.config_dir / "tasks.json"

    @property
    def settings_toml(self) -> Path:
        return self.config_dir / "moltbot.toml"

    @property
    def tasks_dir(self) -> Path:
        return self.root / "tasks"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "moltbot.db"

    @property
    def lock_path(self) -> Path:
        return self.data_dir / "daemon.lock"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def ensure(self) -> None:
        """Create the layout; copy the bundled example tasks on first start."""
        for directory in (self.config_dir, self.tasks_dir, self.data_dir, self.logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if self.tasks_json.exists():
            return
        import shutil  # first start only: keep them off every command's path
        from importlib import resources

        bundled = _bundled_examples()
        for entry in bundled.iterdir():
            name = entry.name
            if name == "tasks.json" or not name.endswith((".sh", ".py")) or name == "__init__.py":
                continue
            target = self.tasks_dir / name
            if not target.exists():
                with resources.as_file(entry) as source:
                    shutil.copyfile(source, target)
                target.chmod(0o755)
        # Written last, so an interrupted first start copies the scripts again.
        self.tasks_json.write_text(bundled.joinpath("tasks.json").read_text())


def _bundled_examples() -> Any:
    """The repository's tasks/ folder: installed as ``moltbot.example_tasks``, or, when
    moltbot runs from a checkout, the folder itself."""
    from importlib import resources

    try:
        return resources.files("moltbot.example_tasks")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "tasks"
