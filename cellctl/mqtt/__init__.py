"""The line on MQTT as Sparkplug B, for a site's unified namespace (``cellctl mqtt``; ``--mqtt URL``
on ``cellctl run`` and ``cellctl cell run``): the line an edge node, each cell a device.

``sparkplug`` is the wire (payload, topics, sequence numbers); ``metrics`` a cell's metrics from its
PackML tags (``cellctl.line.tags``, shared with OPC UA); ``edge`` the edge node's births, data,
deaths, bounded outbox and commands; ``serve`` the publisher process and its connection to the broker.
"""
