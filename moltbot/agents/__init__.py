"""Agents that answer tasks and free text: a local Ollama model, or a Letta agent.

Used by the Discord task actions, ``llm`` tasks and free-text Signal messages.
The core never imports these.
"""
