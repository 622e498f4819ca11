"""MOLTBOT_HOME: the directory layout (the original scheduler's), created on first start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["DEFAULT_HOME", "Home", "HomeError", "layout_error", "layout_problems"]

DEFAULT_HOME = "~/moltbot-system"


class HomeError(Exception):
    """MOLTBOT_HOME's layout cannot be made: what is wrong, at which path, and what to do."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}: {fix}")


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

    @property
    def runs_dir(self) -> Path:
        """Runs as the task user leave what they cannot write to the database here (``run_dirs.py``);
        made by the daemon (or the role) only when ``[daemon] task_user`` is set."""
        return self.root / "runs"

    @property
    def folders(self) -> tuple[Path, ...]:
        return self.config_dir, self.tasks_dir, self.data_dir, self.logs_dir

    def ensure(self) -> None:
        """Create the layout; copy the bundled example tasks on first start.

        Raises HomeError when a folder cannot be made (say, a file is in its place).
        """
        for directory in self.folders:
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise layout_error(directory, exc) from None
        if self.tasks_json.exists():
            return
        try:
            self._copy_examples()
        except OSError as exc:
            fix = f"make {self.tasks_dir} and {self.config_dir} writable by the user moltbot runs as"
            raise HomeError(
                f"cannot write the example tasks: {exc.filename}: {exc.strerror or exc}", fix
            ) from None

    def _copy_examples(self) -> None:
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
                target.chmod(0o700)  # private, like everything moltbot writes (file_modes.py)
        # Written last, so an interrupted first start copies the scripts again.
        self.tasks_json.write_text(bundled.joinpath("tasks.json").read_text())


def layout_error(directory: Path, exc: OSError) -> HomeError:
    """Why ``directory`` could not be made, naming the path in the way when there is one."""
    blocker = _not_a_folder(directory)
    if blocker is not None:
        return _in_the_way(blocker)
    return HomeError(f"cannot create {directory}: {exc.strerror or exc}", _writable_fix(directory))


def layout_problems(home: Home) -> list[HomeError]:
    """What would keep the layout from being made or used, found without changing anything: data/ and
    logs/ must be writable; config/ and tasks/ readable (writable only while the example tasks are
    still to be copied: a deployment keeps them read-only, even to the daemon)."""
    problems = []
    examples_to_copy = not home.tasks_json.exists()
    for directory in home.folders:
        blocker = _not_a_folder(directory)
        written = examples_to_copy or directory in (home.data_dir, home.logs_dir)
        if blocker is not None:
            problems.append(_in_the_way(blocker))
        elif not directory.is_dir() or written:
            if not os.access(_nearest_folder(directory), os.W_OK | os.X_OK):
                what = "is not writable" if directory.is_dir() else "cannot be created"
                problems.append(HomeError(f"{directory} {what}", _writable_fix(directory)))
        elif not os.access(directory, os.R_OK | os.X_OK):
            fix = f"let the user moltbot runs as read {directory} (it need not write it)"
            problems.append(HomeError(f"{directory} is not readable", fix))
    return problems


def _not_a_folder(directory: Path) -> Path | None:
    """The first path from ``directory`` up that exists (or is a link) but is not a folder."""
    for path in (directory, *directory.parents):
        if path.is_dir():
            return None
        if path.is_symlink() or path.exists():
            return path
    return None


def _nearest_folder(directory: Path) -> Path:
    return next(path for path in (directory, *directory.parents) if path.is_dir())


def _in_the_way(blocker: Path) -> HomeError:
    kind = "a link to nothing" if blocker.is_symlink() and not blocker.exists() else "a file"
    return HomeError(f"{blocker} is {kind}, not a folder", "move it aside, and moltbot makes the folder")


def _writable_fix(directory: Path) -> str:
    return f"make {_nearest_folder(directory)} writable by the user moltbot runs as"


def _bundled_examples() -> Any:
    """The repository's tasks/ folder: installed as ``moltbot.example_tasks``, or, when
    moltbot runs from a checkout, the folder itself."""
    from importlib import resources

    try:
        return resources.files("moltbot.example_tasks")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "tasks"
