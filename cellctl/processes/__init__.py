"""Processes and their life: children that announce their endpoints (the twin, its rosbridge
endpoint), signal handling, the console tee and named crash points for crash-safety tests.

The bottom room of ``cellctl``: it imports only the drivers and the twin's wire vocabulary."""
