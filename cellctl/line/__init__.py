"""A whole line on one machine, supervised: the launcher, its restart policy, the twin keeper, the
progress watchdog, the summary and the report of a run directory.

Talks to cells only through their control sockets and their run-directory files; may import
``cell`` for its wire vocabulary, never the test kit."""
