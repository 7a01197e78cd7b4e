"""Who is responsible for a part: the two-phase custody ledger (``ledger``, SQLite) and the
custodian that reconciles it with sensors and resynchronises it with neighbours (``custodian``).

May import ``handoff`` (the links it resynchronises over), ``devices`` (sensors) and ``config``;
never a cell or the line."""
