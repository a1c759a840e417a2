from recft.cli import main

raise SystemExit(main())
