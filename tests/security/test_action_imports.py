"""moltbot's own actions import moltbot's modules, never a file that happens to lie in ``tasks/``.

A run's working directory is ``tasks/``, where scripts (and whoever may write there) live; the
``<kind>-action`` processes are ``python -m moltbot``, which would put that folder first on
``sys.path`` and import a ``tasks/argparse.py`` in place of the standard library's.
"""

from __future__ import annotations

from tests.conftest import Env
from tests.fake_agents import FakeOllama


def test_an_action_does_not_import_a_module_planted_in_tasks(env: Env) -> None:
    planted = env.home.root / "planted-code-ran"
    (env.home.tasks_dir / "argparse.py").write_text(f"open({str(planted)!r}, 'w').close()\n")
    ollama = FakeOllama(answer=lambda body: {"role": "assistant", "content": "the model's answer"}).start()
    try:
        env.write_tasks(
            {"task_id": "digest", "kind": "llm", "prompt": "Anything?", "schedule": "daily at 07:00"},
            settings=f'[ollama]\nhost = "{ollama.url}"\nmodel = "llama3.2"\n',
        )
        run = env.cli("run", "digest")
    finally:
        ollama.stop()
    assert not planted.exists(), "tasks/argparse.py was imported into moltbot's action"
    assert run.returncode == 0 and "the model's answer" in run.stdout, run.stdout + run.stderr
