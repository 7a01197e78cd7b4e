from cellctl.cli import main

raise SystemExit(main())
