"""Agents that answer tasks and free text: a local Ollama model, or a Letta agent.

Used by the ``llm`` and ``discord`` task kinds' actions and by free-text Signal
messages. The core never imports these.
"""
