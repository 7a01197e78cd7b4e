"""Handing parts on between neighbours, modelled on IPC-HERMES-9852: the sender's state table
(``hermes``), the messages (``messages``), one link per neighbour (``link``), the ZeroMQ inbox
(``mailbox``) and how cells on one machine find each other (``rendezvous``).

Never imports a cell, custody or the line: a link knows messages, not parts' owners."""
