"""The chat-command front: parse, authorize, format (transport -> handlers -> core).

A top-level package, under the same name in a checkout and installed, typed
like the rest. Handlers reach moltbot only through the core API
(``moltbot.core``) and its values (``moltbot.records``), never the store.

| module | what |
|---|---|
| ``commands`` | every command, declared once; ``parse``, the role check, ``handle`` |
| ``agent`` | free text, through a model whose only tools are the commands |
| ``format`` | phone-sized texts: status lines, run results, relative times |
"""
