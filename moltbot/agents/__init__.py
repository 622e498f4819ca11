"""Agents that answer tasks and free text: a local Ollama model, or a Letta agent.

Used by the Discord task actions, ``llm`` tasks and free-text Signal messages
(issue 4, in progress). The core never imports these.
"""
