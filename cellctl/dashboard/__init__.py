"""The operator's page: the line live in a browser, with the PackML buttons a technician presses.

``view`` (what the page shows; it is fed by ``cellctl.line.feeds``: cells' status sockets, the run's
events; where commands go), ``access`` (logins, sessions, who may command), ``app`` (the Starlette
routes and the websocket that pushes changes), ``serve`` (binding rules, TLS, uvicorn). The page
itself is ``static/``. It reads what any outside client may read, and commands through the cells'
control sockets like ``cellctl cmd``: never a back door into a cell or the twin.

May import: line, cell, config, users, certs, rundir, faults, processes, drivers (below it); the
CLI imports it.
"""
