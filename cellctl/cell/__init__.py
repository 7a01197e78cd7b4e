"""One cell: the PackML machine (``packml``), the controller that runs a recipe per part
(``controller``), its control socket (``control``) and the cell process (``process``).

May import custody, handoff, devices, config and processes; never the line or the test kit."""
