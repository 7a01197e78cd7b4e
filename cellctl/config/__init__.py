"""Line configs: the schema (``line``), loading a file into it with errors that name the file and
the key (``loader``), where the embedded configs live (``paths``) and the reach check (``reach``).

Imports only the drivers' and the twin's config vocabulary; nothing here starts a process."""
