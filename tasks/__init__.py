"""The bundled example tasks (installed as ``moltbot.example_tasks``).

On first start they are copied to MOLTBOT_HOME/tasks and config/tasks.json.
"""
