from rf8hw.cli import main

raise SystemExit(main())
