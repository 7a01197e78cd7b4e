"""Scenario files: the schema (``schema``), running one in lockstep with a fault injector
(``run``), one per process (``worker``) and a campaign of them (``campaign``: ``cellctl test``)."""
