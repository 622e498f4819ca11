"""Configuration: the home layout, moltbot.toml and tasks.json.

| module | what |
|---|---|
| ``home`` | MOLTBOT_HOME's layout, created (with the bundled examples) on first start |
| ``settings`` | moltbot.toml: ``[daemon]``, read with ``integrations`` (``[signal]``, ``[discord]``, ...) |
| ``spec`` | ``TaskSpec``: a validated task, whatever its source |
| ``tasks`` | tasks.json, read with ``reader`` and each kind's own fields (``moltbot/kinds/``) |
| ``errors`` | ``ConfigError``: every problem with its file, line and field |

Import the module you need: ``moltbot status`` loads only ``home``.
"""
