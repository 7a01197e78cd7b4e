"""The ``cellctl`` command line: parsing, option checks and one thin command per subcommand.

Owns what a user types and what they read back (one line per problem, exit status 2). It may import
every other room, but only inside a command, so that ``cellctl --help`` loads none of them."""
