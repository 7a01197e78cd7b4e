from cellctl.cli.main import main

raise SystemExit(main())
